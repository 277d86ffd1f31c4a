"""The loops: few reads of the device per epoch, and flip test-time augmentation that averages the two views."""

import torch
from torch import nn

from eva_helpers.engine import evaluate, train_epoch


def test_an_epoch_reads_the_device_only_at_its_checks_when_progress_is_off(monkeypatch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = [(torch.randn(4, 3, 2, 2), torch.randint(0, 3, (4,))) for _ in range(40)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    reads = {"item": 0, "tolist": 0}
    item, tolist = torch.Tensor.item, torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.__setitem__("item", reads["item"] + 1) or item(self))
    monkeypatch.setattr(
        torch.Tensor, "tolist", lambda self: reads.__setitem__("tolist", reads["tolist"] + 1) or tolist(self)
    )
    train_epoch(model=model, loader=batches, optimizer=optimizer, scheduler=scheduler, criterion=nn.CrossEntropyLoss(),
                device=torch.device("cpu"), channels_last=False, progress=False, check_every=20)  # fmt: skip
    assert reads == {"item": 2, "tolist": 2}  # the epoch's loss and accuracy; one read per 20-step check


def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))  # not flip-invariant: the two views differ
    batches = [(torch.randn(6, 3, 4, 4), torch.randint(0, 5, (6,))) for _ in range(2)]
    got = evaluate(model=model, loader=batches, device=torch.device("cpu"), channels_last=False, tta=True)
    plain = evaluate(model=model, loader=batches, device=torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        logits = [(model(x) + model(x.flip(3))) / 2 for x, _ in batches]
    labels = [y for _, y in batches]
    loss = sum(nn.functional.cross_entropy(out, y, reduction="sum") for out, y in zip(logits, labels))
    assert abs(got["loss_sum"] - float(loss)) < 1e-4 and got["loss_sum"] != plain["loss_sum"]
    assert got["correct"] == sum(int((out.argmax(1) == y).sum()) for out, y in zip(logits, labels))
