import numpy as np
import torch

from soundtwin.config import load_config
from soundtwin.training.optim import build_optimizer, build_scheduler, lr_factor


def test_keras_rmsprop_matches_formula():
    from soundtwin.training.optim import KerasRMSprop

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = KerasRMSprop([w], lr=0.1)
    v = np.zeros(2)
    ref = np.array([1.0, -2.0])
    for _ in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        g = 2 * ref
        v = 0.9 * v + 0.1 * g**2
        ref = ref - 0.1 * g / np.sqrt(v + 1e-7)
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-5)


def test_schedule_warms_up_then_decays_and_resumes_where_it_stopped():
    cfg = load_config("default", overrides=["train.lr=0.01"])
    w = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(cfg, [w])
    sched = build_scheduler(cfg, opt, 100)
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == 0.01 * 0.04 and max(seen) == seen[int(np.argmax(seen))] <= 0.01
    assert 8 <= int(np.argmax(seen)) <= 11 and seen[-1] < 0.0001  # 10 % warm-up, cosine down to 0.1 %
    assert all(x == 0.01 * lr_factor(k, 100, "onecycle") for k, x in enumerate(seen))
    # a resumed run starts at the step it stopped at, with the same rate as an uninterrupted one
    opt2 = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    build_scheduler(cfg, opt2, 100, start_step=37)
    assert opt2.param_groups[0]["lr"] == seen[37]


def test_constant_schedule_keeps_the_tutorials_rate():
    cfg = load_config("tutorial")
    opt = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    sched = build_scheduler(cfg, opt, 50)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == cfg.train.lr
