"""The TorchServe-shaped management API through the real server, and autoscaling seen through it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http.aio as httpclient
from modelport.server.workers.instances import INSTANCE_KINDS

from tests.helpers.onnx_models import matmul_chain_model, mlp_model, write_model
from tests.helpers.server_process import ServerExited, ServerProcess, start_server
from tests.helpers.waiting import wait_for

MLP_CONFIG = {
    "max_batch_size": 16,
    "dynamic_batching": {"max_queue_delay_us": 500, "max_queue_size": 100},
    "workers": {"min": 1, "max": 3, "threads": 1},
}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("management-repo")
    write_model(root, "mlp", mlp_model(), config=MLP_CONFIG)
    write_model(root, "other", mlp_model(seed=3), config=MLP_CONFIG)
    write_model(root, "two", mlp_model(), version=1, config={**MLP_CONFIG, "version_policy": {"all": True}})
    write_model(root, "two", mlp_model(seed=5), version=2)
    return root


@pytest.fixture(scope="module", params=INSTANCE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The server's ``--instance-kind``: the module runs once with each."""
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def server(repository: Path, kind: str) -> Iterator[ServerProcess]:
    args = ("--model-control", "explicit", "--load-model", "mlp", "--instance-kind", kind)
    with start_server(repository, *args) as handle:
        yield handle


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=f"http://{server.management_url}", timeout=30)


def test_list_and_describe(server: ServerProcess, kind: str) -> None:
    with api(server) as client:
        listed = client.get("/models").json()
        assert {m["modelName"] for m in listed["models"]} == {"mlp", "other", "two"}
        [entry] = client.get("/models/mlp").json()
        assert entry["modelName"] == "mlp" and entry["modelVersion"] == "1" and entry["status"] == "READY"
        assert entry["minWorkers"] == 1 and entry["maxWorkers"] == 3
        [worker] = entry["workers"]
        assert worker["status"] == "READY" and worker["uptimeSeconds"] >= 0
        # A thread instance has no process of its own: pid 0, never the server's.
        assert worker["kind"] == kind and (worker["pid"] > 0 if kind == "process" else worker["pid"] == 0)
        assert entry["config"]["instances"] == {"kind": kind}
        assert entry["jobQueueStatus"] == {
            "remainingCapacity": 100,
            "pendingRequests": 0,
            "batchesInFlight": 0,
        }
        assert entry["config"]["dynamic_batching"]["max_queue_delay_us"] == 500
        assert entry["config"]["workers"] == {"min": 1, "max": 3, "threads": 1}
        missing = client.get("/models/nope")
        assert missing.status_code == 404
        assert missing.json()["code"] == 404 and "nope" in missing.json()["message"]


def test_scale_synchronously_and_back(server: ServerProcess, kind: str) -> None:
    with api(server) as client:
        response = client.put("/models/mlp", params={"min_worker": 3, "max_worker": 3, "synchronous": "true"})
        assert response.status_code == 200, response.text
        workers = client.get("/models/mlp").json()[0]["workers"]
        assert len(workers) == 3 and len({w["id"] for w in workers}) == 3
        if kind == "process":
            assert len({w["pid"] for w in workers}) == 3
        assert all(w["status"] == "READY" for w in workers)
        response = client.put("/models/mlp", params={"min_worker": 1, "max_worker": 1})
        assert response.status_code == 202
        wait_for(
            lambda: len(client.get("/models/mlp").json()[0]["workers"]) == 1, "scale-down to 1", timeout=10
        )
        bad = client.put("/models/mlp", params={"min_worker": 3, "max_worker": 2})
        assert bad.status_code == 400 and "min_worker" in bad.json()["message"]
        bad = client.put("/models/mlp", params={"min_worker": "many"})
        assert bad.status_code == 400 and "'min_worker'" in bad.json()["message"]
        client.put("/models/mlp", params={"min_worker": 1, "max_worker": 3, "synchronous": "true"})


@pytest.mark.parametrize(
    "url",
    ["../mlp", "http://example.com/model.onnx", "/etc/passwd", "mlp/1", "s3://bucket/mlp", "..", ".hidden"],
)
def test_register_refuses_urls_and_paths(server: ServerProcess, url: str) -> None:
    with api(server) as client:
        response = client.post("/models", params={"url": url})
        assert response.status_code == 400, response.text
        assert "only models already in the repository" in response.json()["message"]


def test_register_unknown_name_is_404(server: ServerProcess) -> None:
    with api(server) as client:
        response = client.post("/models", params={"url": "absent"})
        assert response.status_code == 404
        assert "absent" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "params"),
    [("GET", {}), ("PUT", {"min_worker": 1}), ("DELETE", {})],
    ids=["get", "put", "delete"],
)
def test_an_unknown_model_is_404_naming_it(
    server: ServerProcess, method: str, params: dict[str, Any]
) -> None:
    with api(server) as client:
        response = client.request(method, "/models/nowhere", params=params)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["code"] == 404 and body["type"] == "ModelNotFound"
        assert "'nowhere'" in body["message"]


def test_every_error_takes_its_status_from_the_one_table() -> None:
    """Management's own statuses (TorchServe's) by error class, a subclass inheriting its base's: no error
    of the server's tree is left without one, and an unknown model is a 404, not the inference API's 400."""
    from modelport.server import errors
    from modelport.server.protocols.management_api import MANAGEMENT_STATUS, management_status

    class UnknownVersion(errors.ModelNotFound):
        pass

    assert management_status(errors.ModelNotFound("m")) == 404
    assert management_status(UnknownVersion("m")) == 404
    assert management_status(errors.InvalidInput("m")) == 400
    assert management_status(errors.QueueFull("m")) == 503
    assert management_status(errors.PayloadTooLarge("m")) == 413
    exported = [getattr(errors, name) for name in errors.__all__]
    kinds = [k for k in exported if isinstance(k, type) and issubclass(k, errors.ModelportError)]
    assert set(kinds) == set(
        MANAGEMENT_STATUS
    )  # every class has its own entry: none falls through by accident


def test_register_with_initial_workers_then_unregister(server: ServerProcess, kind: str) -> None:
    with api(server) as client:
        response = client.post("/models", params={"url": "other", "initial_workers": 2})
        assert response.status_code == 200, response.text
        [entry] = client.get("/models/other").json()
        assert len(entry["workers"]) == 2 and entry["minWorkers"] == 2

        async def one() -> Any:
            infer = httpclient.InferenceServerClient(server.http_url)
            try:
                tensor = httpclient.InferInput("features", [1, 16], "FP32")
                tensor.set_data_from_numpy(np.ones((1, 16), np.float32))
                return (await infer.infer("other", [tensor])).as_numpy("probabilities")
            finally:
                await infer.close()

        assert asyncio.run(one()).shape == (1, 10)
        pids = [w["pid"] for w in entry["workers"]]
        assert client.delete("/models/other").status_code == 200
        assert client.get("/models/other").status_code == 404
        if kind == "process":
            wait_for(
                lambda: not any(Path(f"/proc/{p}").exists() for p in pids), "the workers to exit", timeout=5
            )


def test_unregister_one_of_several_versions_is_refused(server: ServerProcess) -> None:
    with api(server) as client:
        assert client.post("/models", params={"url": "two"}).status_code == 200
        # As TorchServe: no version describes the default one (the highest, unless set-default chose one).
        assert [e["modelVersion"] for e in client.get("/models/two").json()] == ["2"]
        # A version in the path selects that serving version ("all": every one); one not serving is a 404.
        assert [e["modelVersion"] for e in client.get("/models/two/2").json()] == ["2"]
        assert [e["modelVersion"] for e in client.get("/models/two/all").json()] == ["1", "2"]
        assert client.get("/models/two/7").status_code == 404
        assert client.put("/models/two/7", params={"min_worker": 1}).status_code == 404
        refused = client.delete("/models/two/1")
        assert refused.status_code == 400 and "version_policy" in refused.json()["message"]
        assert client.delete("/models/two/7").status_code == 404
        assert client.delete("/models/two").status_code == 200


def test_non_loopback_management_without_token_refuses_to_start(repository: Path) -> None:
    with (
        pytest.raises(ServerExited, match="management_token"),
        start_server(repository, "--management-host", "0.0.0.0"),
    ):
        pass


def test_token_is_required_when_configured(repository: Path) -> None:
    args = ("--management-host", "0.0.0.0", "--model-control", "explicit", "--load-model", "mlp")
    with (
        start_server(repository, *args, env={"MODELPORT_MANAGEMENT_TOKEN": "s3cret"}) as server,
        api(server) as client,
    ):
        assert client.get("/models").status_code == 401
        wrong = client.get("/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "Bearer" in wrong.json()["message"]
        ok = client.get("/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


@pytest.mark.parametrize("instance_kind", INSTANCE_KINDS)
def test_autoscaling_scales_up_under_load_and_down_after(tmp_path: Path, instance_kind: str) -> None:
    config = {
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_us": 1000, "max_queue_size": 1000},
        # The model's own target and idle cooldown (defaults: max(5 ms, 4 x max_queue_delay), 10 s).
        "workers": {"min": 1, "max": 2, "threads": 1, "target_queue_delay_us": 20000, "scale_down_idle_s": 1},
    }
    write_model(tmp_path, "slow", matmul_chain_model(), config=config)
    with start_server(tmp_path, "--instance-kind", instance_kind) as server, api(server) as client:

        def count() -> int:
            return len(client.get("/models/slow").json()[0]["workers"])

        assert count() == 1
        autoscaling = client.get("/models/slow").json()[0]["config"]["autoscaling"]
        assert autoscaling["target_queue_delay_us"] == 20000
        assert autoscaling["idle_cooldown_s"] == 1

        async def load(seconds: float) -> int:
            infer = httpclient.InferenceServerClient(server.http_url, conn_limit=8)
            done = 0
            stop = time.monotonic() + seconds
            try:

                async def loop() -> None:
                    nonlocal done
                    tensor = httpclient.InferInput("x", [32, 1024], "FP32")
                    tensor.set_data_from_numpy(np.ones((32, 1024), np.float32))
                    while time.monotonic() < stop:
                        await infer.infer("slow", [tensor])
                        done += 1

                await asyncio.gather(*(loop() for _ in range(8)))
                return done
            finally:
                await infer.close()

        peak = 0

        async def watch_while_loading() -> int:
            nonlocal peak
            task = asyncio.ensure_future(load(6.0))
            while not task.done():
                peak = max(peak, await asyncio.to_thread(count))
                await asyncio.sleep(0.2)
            return await task

        assert asyncio.run(watch_while_loading()) > 0
        assert peak == 2, "queue delay far above the target: the pool must have grown to its max"
        assert "scaling up to 2 workers" in server.logs()
        idle_since = time.monotonic()
        wait_for(lambda: count() == 1, "the idle scale-down (1 s cooldown)", timeout=30)
        assert time.monotonic() - idle_since < 8, "scale_down_idle_s: 1 must beat the 10 s default"
        assert "scaling down to 1 workers" in server.logs()


class _BrokenManager:
    """A model manager that fails unexpectedly (the management app's only dependency)."""

    def serving(self) -> list[Any]:
        raise RuntimeError("boom")

    def index(self) -> list[Any]:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_a_500_with_a_request_id_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from modelport.server.protocols.management_api import create_management_app

    app = create_management_app(_BrokenManager(), token=None)  # type: ignore[arg-type]  # a stand-in

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://management") as client:
            return await client.get("/models/mlp")

    response = asyncio.run(call())
    assert response.status_code == 500
    told = re.fullmatch(
        r"internal error; the server log has the details \(request id: ([0-9a-f]{32})\)",
        response.json()["message"],
    )
    assert told is not None  # the client gets no detail of the failure
    assert any(told[1] in r.getMessage() and r.exc_info for r in caplog.records)  # the log has it
