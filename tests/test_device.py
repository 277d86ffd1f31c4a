"""Where the work runs, checked on the CPU with the GPU's answers mocked: precision, devices, DDP, the fast paths."""

import warnings

import pytest
import torch
from torch import nn

from eva_helpers import device as dev
from eva_helpers.loaders import eval_batch_size
from eva_helpers.models import build_model
from eva_helpers.run_setup import make_sgd, tune_backends

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """A pretend GPU of a chosen compute capability (torch.cuda's answers only; nothing runs on it)."""

    def use(capability, name="Tesla T4"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # as on a T4

    return use


def test_auto_precision_is_bf16_only_where_the_gpu_has_it_natively(gpu):
    gpu((7, 5))
    assert dev.pick_precision(precision="auto", device=CUDA) is torch.float16  # T4: fp16 with a gradient scaler
    gpu((8, 0), name="NVIDIA A100")
    assert dev.pick_precision(precision="auto", device=CUDA) is torch.bfloat16
    gpu((9, 0), name="NVIDIA H200")
    assert dev.pick_precision(precision="auto", device=CUDA) is torch.bfloat16


def test_an_explicit_bf16_on_a_t4_gets_a_clear_warning(gpu):
    gpu((7, 5))
    with pytest.warns(UserWarning, match=r"Tesla T4 \(compute capability 7.5\).*emulated.*precision='auto'"):
        assert dev.pick_precision(precision="bf16", device=CUDA) is torch.bfloat16
    gpu((8, 6), name="NVIDIA A10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dev.pick_precision(precision="bf16", device=CUDA)


def test_a_gpu_index_the_machine_lacks_is_named_up_front(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="has 1 GPU.*cuda:0 to cuda:0"):
        dev.pick_device("cuda:3")
    with pytest.raises(ValueError, match="device='tpu'.*'cuda:N'"):
        dev.pick_device("tpu")


def test_ddp_on_cuda_normalises_over_the_global_batch(monkeypatch):
    wrapped = {}

    def fake_ddp(model, device_ids=None):  # a process group is not needed to check the conversion
        wrapped.update(model=model, device_ids=device_ids)
        return model

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", fake_ddp)
    net = dev.distributed(model=build_model(name="custom_resnet", num_classes=10), device=CUDA, sync_bn=True)
    kinds = {type(m) for m in net.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds and wrapped["device_ids"] == [0]
    cpu = dev.distributed(model=build_model(name="custom_resnet", num_classes=10), device=torch.device("cpu"))
    assert nn.SyncBatchNorm not in {type(m) for m in cpu.modules()}  # gloo on the CPU has no SyncBatchNorm
    off = dev.distributed(model=build_model(name="custom_resnet", num_classes=10), device=CUDA, sync_bn=False)
    assert nn.SyncBatchNorm not in {type(m) for m in off.modules()}


def test_cuda_gets_cudnn_autotuning_and_fused_sgd(monkeypatch):
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        tune_backends(torch.device("cpu"))
        assert torch.backends.cudnn.benchmark is False
        tune_backends(CUDA)
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before

    made = {}

    class Recorder(torch.optim.SGD):
        def __init__(self, params, lr, momentum=0, weight_decay=0, nesterov=False, fused=None):
            made.update(fused=fused)
            super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    monkeypatch.setattr(torch.optim, "SGD", Recorder)
    model = nn.Linear(2, 2)
    make_sgd(model=model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert made["fused"] is None  # CPU parameters
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    make_sgd(model=model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert made["fused"] is True


SIZES = [(10000, 512, 500), (10000, 1000, 1000), (33000, 1000, 1000), (16500, 1000, 825), (9973, 512, 512),
         (7, 512, 7), (12, 8, 6)]  # fmt: skip


@pytest.mark.parametrize("n, cap, expected", SIZES)
def test_the_evaluation_batch_divides_the_held_out_split(n, cap, expected):
    assert eval_batch_size(n=n, cap=cap) == expected


def test_provenance_names_the_machine_and_the_commit():
    got = dev.provenance(torch.device("cpu"))
    assert set(got) == {"device_name", "cuda", "cudnn", "git_commit"} and got["device_name"]


@pytest.mark.parametrize(
    ("files", "want"),
    [({"cpu.max": "200000 100000\n"}, 2), ({"cpu.max": "150000 100000\n"}, 2), ({"cpu.max": "max 100000\n"}, None),
     ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
     ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None), ({}, None)],
)  # fmt: skip
def test_the_cpu_quota_is_read_from_cgroup_v2_or_v1_and_rounded_up(tmp_path, files, want):
    from eva_helpers.device import cpu_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == want
