"""Is this venv's vLLM CPU usable on this machine? Exit 0 and one line if so.

Run with the venv's Python and ``VLLM_TARGET_DEVICE=cpu``: by ``install.sh`` after installing,
and by the e2e fixture to decide whether to install. The wheel carries kernels per x86 ISA
(``_C``: AVX512 with bf16/AMX, ``_C_AVX512``, ``_C_AVX2``) and vLLM loads the one this CPU runs;
``import vllm._C`` alone is the AVX512 build and dies with SIGILL on a CPU without AVX512.
"""

import torch
import torchvision
import vllm
from torchvision.ops import nms
from vllm.platforms import current_platform

current_platform.import_kernels()
assert torch.ops._C.silu_and_mul is not None
nms(torch.rand(3, 4), torch.rand(3), 0.5)  # torchvision's own kernels load beside this torch
print(
    "OK torch",
    torch.__version__,
    "torchvision",
    torchvision.__version__,
    "vllm",
    vllm.__version__,
    "platform",
    current_platform.device_type,
)
