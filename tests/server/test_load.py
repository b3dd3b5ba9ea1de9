"""Reading an engine's running-request count from vLLM's /metrics page."""

from __future__ import annotations

from editjudge.server.load import running_requests

PAGE = b"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="judge"} 37.0
# HELP vllm:num_requests_running_total made up: a longer name that merely starts alike
vllm:num_requests_running_total{engine="0"} 999.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="judge"} 5.0
"""


def test_the_running_gauge_is_read_and_lookalikes_are_not() -> None:
    assert running_requests(PAGE) == 37


def test_data_parallel_engines_are_summed() -> None:
    page = PAGE + b'vllm:num_requests_running{engine="1",model_name="judge"} 3.0\n'
    assert running_requests(page) == 40


def test_a_page_without_the_gauge_says_nothing() -> None:
    assert running_requests(b"# nothing here\nprocess_cpu_seconds_total 1.0\n") is None
    assert running_requests(b"") is None
    assert running_requests(b'vllm:num_requests_running{engine="0"} NaN-ish\n') is None
