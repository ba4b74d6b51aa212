"""nnU-Net features that wrap the network: torch.compile (no recompiles from the random axial choice)
and DDP (every parameter gets a gradient every step, ranks stay in sync), on the CPU."""
import itertools
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.method.loss import ReIsotropicLoss
from nnunetv2_reisoseg.method.network import build_reiso_network
from tests.fixtures import load_plans

pytestmark = pytest.mark.e2e  # whole runs through nnU-Net: outside the fast lane (pytest -m "not e2e")


def _net_and_shape():
    pm = PlansManager(load_plans("tiny_40x10x10"))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    return build_reiso_network(pm, cm, 1, 2, True).train(), tuple(cm.patch_size)


def test_compile_does_not_recompile_for_the_random_axial_choices(monkeypatch):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    net, shape = _net_and_shape()
    variants = list(itertools.product(range(4), (None, *net.pi_module.lateral_axes)))  # all 12 draws
    cycle = itertools.cycle(variants)
    monkeypatch.setattr(net.pi_module, "draw", lambda: next(cycle))
    compiled = torch.compile(net, backend="eager")  # dynamo's guards and graphs, without codegen time
    x = torch.randn(1, 1, *shape)

    def step():
        out = compiled(x)
        (sum(o.mean() for o in out.anisotropic) + sum(o.mean() for o in out.isotropic)).backward()

    step()
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(len(variants)):
        step()
    assert counters["stats"]["unique_graphs"] == graphs
    assert not counters["recompiles"]
    torch._dynamo.reset()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    net, shape = _net_and_shape()  # same seed: same initial weights on both ranks
    ddp = torch.nn.parallel.DistributedDataParallel(net)  # find_unused_parameters=False, as nnU-Net
    n_out = len(net.decoder.stages)
    weights = [0.5 ** i for i in range(n_out)]
    weights[-1] = 1e-6  # nnU-Net's rule under DDP without compile
    weights = [w / sum(weights) for w in weights]
    dc_ce = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": True}, {},
                           dice_class=MemoryEfficientSoftDiceLoss)
    loss_fn = ReIsotropicLoss(DeepSupervisionWrapper(dc_ce, weights))
    opt = torch.optim.SGD(ddp.parameters(), 1e-2, momentum=0.99, nesterov=True)
    torch.manual_seed(100 + rank)  # different data and PI draws per rank
    for _ in range(2):  # DDP reports parameters without gradient at the next step
        x = torch.randn(1, 1, *shape)
        target = [(torch.rand(1, 1, *o.shape[2:]) > 0.7).float() for o in net.eval()(x)]
        net.train()
        opt.zero_grad()
        loss = loss_fn(ddp(x), target)
        loss.backward()
        missing = [k for k, p in net.named_parameters() if p.grad is None]
        opt.step()
    checksum = torch.stack([p.detach().double().sum() for p in net.parameters()])
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    dist.all_gather(gathered, checksum)
    queue.put((rank, missing, bool(torch.equal(gathered[0], gathered[1]))))
    dist.destroy_process_group()


def test_ddp_every_parameter_gets_a_gradient_and_ranks_stay_in_sync():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), queue), nprocs=2, join=True, start_method="spawn")
    results = sorted(queue.get() for _ in range(2))
    assert [r[1] for r in results] == [[], []]
    assert all(r[2] for r in results)
