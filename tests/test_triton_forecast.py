"""A forecast bundle served by a real Triton server (sequence batcher: one stream per correlation
id), against runtime.open_engine on the same bundle, frames and times."""
import os

import cv2
import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_triton import TRITON_ENV, _server_or_skip

grpcclient = pytest.importorskip("tritonclient.grpc")

from runtime.serving import triton  # noqa: E402


@pytest.fixture(scope="module")
def server(forecast_bundle, tmp_path_factory):
    _server_or_skip()
    from runtime.serving.triton_server import LocalTritonServer
    repo = str(tmp_path_factory.mktemp("triton-forecast") / "models")
    triton.write_repository(forecast_bundle, repo, name="f2f", threads=1, python_path=REPO)
    with LocalTritonServer(repo, str(tmp_path_factory.mktemp("work")), TRITON_ENV) as srv:
        yield srv


def _frames(forecast_sequences, count):
    from runtime.data.cityscapes import find_pairs, group_sequences
    sequence = list(group_sequences(find_pairs(forecast_sequences, "val")).values())[0]
    return [cv2.imread(image) for image, _ in sequence[:count]]


def _send(client, frame, when, sequence_id, start, end):
    frame_in = grpcclient.InferInput(triton.FRAME_INPUT, [1] + list(frame.shape), "UINT8")
    frame_in.set_data_from_numpy(frame[None])
    time_in = grpcclient.InferInput(triton.FRAME_TIME_INPUT, [1], "FP64")
    time_in.set_data_from_numpy(np.array([when], np.float64))
    result = client.infer("f2f", [frame_in, time_in], sequence_id=sequence_id,
                          sequence_start=start, sequence_end=end)
    return result.as_numpy(triton.FORECAST_OUTPUT)[0]


def test_forecasts_are_the_engines_per_stream(server, forecast_bundle, forecast_sequences):
    import runtime
    frames = _frames(forecast_sequences, 10)
    engine = runtime.open_engine(forecast_bundle)
    rate = engine.frame_rate
    try:
        engine.reset()
        expected = [engine.step(f, i / rate).class_map for i, f in enumerate(frames)]
    finally:
        engine.close()
    assert any(m is None for m in expected) and any(m is not None for m in expected)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    got = {1: [], 2: []}
    for i, frame in enumerate(frames):  # two cameras interleaved: each keeps its own past
        for stream, picture in ((1, frame), (2, frames[-1 - i])):
            got[stream].append(_send(client, picture, i / rate, stream, i == 0,
                                     i == len(frames) - 1))
    for want, have in zip(expected, got[1]):
        if want is None:
            assert have.shape == (0, 0)  # warming up: no forecast yet
        else:
            np.testing.assert_array_equal(have, want)
    assert sum(m.size > 0 for m in got[2]) == sum(m is not None for m in expected)
    meta = client.get_model_metadata("f2f")
    assert [o.name for o in meta.outputs] == ["forecast"]
    assert os.path.isdir(server.repo)
