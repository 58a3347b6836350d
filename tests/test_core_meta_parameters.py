"""``meta_parameters``: parameters built on the meta device, buffers real, scoped to the calling thread
and without replacing anything of torch's."""

from __future__ import annotations

import threading

import torch
from torch import nn

from streaming_core.checkpoints.components import meta_parameters


class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.register_buffer("position_ids", torch.arange(5), persistent=False)


def test_parameters_on_meta_buffers_real_and_nothing_patched():
    register = nn.Module.register_parameter
    with meta_parameters():
        assert nn.Module.register_parameter is register
        inside = WithBuffer()
    outside = WithBuffer()
    assert {p.device.type for p in inside.parameters()} == {"meta"}
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in inside.parameters())
    assert torch.equal(inside.position_ids, torch.arange(5))
    assert {p.device.type for p in outside.parameters()} == {"cpu"}


def test_parameters_keep_their_shapes_and_the_model_loads_by_assignment():
    with meta_parameters():
        module = WithBuffer()
    real = WithBuffer()
    assert [p.shape for p in module.parameters()] == [p.shape for p in real.parameters()]
    module.load_state_dict(real.state_dict(), assign=True)
    x = torch.randn(2, 4)
    assert torch.equal(module.linear(x), real.linear(x))


def test_other_threads_keep_real_parameters_meanwhile():
    entered, built = threading.Event(), threading.Event()
    devices = {}

    def other_thread():
        entered.wait(10)
        devices["other"] = {p.device.type for p in WithBuffer().parameters()}
        built.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with meta_parameters():
        entered.set()
        assert built.wait(10)
        devices["inside"] = {p.device.type for p in WithBuffer().parameters()}
    worker.join()
    assert devices == {"other": {"cpu"}, "inside": {"meta"}}


def test_nested_blocks_restore_the_outer_state():
    with meta_parameters():
        with meta_parameters():
            pass
        assert {p.device.type for p in nn.Linear(2, 2).parameters()} == {"meta"}
    assert {p.device.type for p in nn.Linear(2, 2).parameters()} == {"cpu"}
