"""The public surface: ``editjudge`` and ``editjudge.client`` export exactly the intended names.

Adding a name is a decision (add it here too); losing or renaming one breaks users' imports.
"""

from __future__ import annotations
import __future__

import types

import pytest

import editjudge
import editjudge.client

#: The client API, re-exported unchanged by ``editjudge``.
CLIENT_API = {
    # clients and their settings
    "AsyncClient",
    "Client",
    # the judge as a reward function for training loops
    "Reward",
    "AsyncReward",
    "RewardError",
    "RetryPolicy",
    "API_KEY_ENV",
    "DEFAULT_URL",
    # inputs and results
    "ImageInput",
    "Item",
    "ScoreResult",
    "GroupResult",
    "ErrorInfo",
    "Fingerprint",
    "ServerInfo",
    "Limits",
    "Capacity",
    # errors
    "EditJudgeError",
    "InputError",
    "APIConnectionError",
    "APITimeoutError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "NotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "ServerError",
}


def public_names(module: types.ModuleType) -> set[str]:
    """What ``module`` offers without a leading underscore, less its submodules and the
    ``annotations`` feature ``from __future__ import annotations`` leaves behind."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


@pytest.mark.parametrize(
    ("module", "intended"),
    [(editjudge, CLIENT_API | {"__version__"}), (editjudge.client, CLIENT_API)],
)
def test_all_lists_exactly_the_intended_names(module: types.ModuleType, intended: set[str]) -> None:
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is listed twice"
    assert set(exported) == intended
    for name in exported:
        assert getattr(module, name) is not None, name
    # and nothing public is left out of __all__ by accident
    assert public_names(module) <= set(exported), public_names(module) - set(exported)


def test_editjudge_re_exports_the_client_objects_themselves() -> None:
    for name in CLIENT_API:
        assert getattr(editjudge, name) is getattr(editjudge.client, name), name
        defined_in = getattr(getattr(editjudge, name), "__module__", "editjudge.client")
        if isinstance(getattr(editjudge, name), type):
            assert defined_in.startswith("editjudge.client."), (name, defined_in)
    assert isinstance(editjudge.__version__, str) and editjudge.__version__[0].isdigit()
