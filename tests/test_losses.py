import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.losses.lovasz import lovasz_softmax_flat

L = go.losses


def rand_case(seed, B=2, C=4, S=(3, 3, 2), ignore_frac=0.2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, *S, generator=g, dtype=dtype)
    target = torch.randint(0, C, (B, *S), generator=g)
    target[torch.rand(B, *S, generator=g) < ignore_frac] = 255
    return logits, target


# ---------------------------------------------------------------- focal
def numpy_focal_softmax(logits, target, gamma, alpha, weight, ignore):
    x = logits.double().numpy()
    t = target.numpy()
    C = x.shape[1]
    num = den = 0.0
    for b in range(x.shape[0]):
        for idx in np.ndindex(*t.shape[1:]):
            y = t[(b, *idx)]
            if y == ignore:
                continue
            z = np.array([x[(b, c, *idx)] for c in range(C)])
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            w = 1.0 if weight is None else weight[y]
            a = 1.0 if alpha is None else alpha[y]
            num += -w * a * (1 - p[y]) ** gamma * np.log(p[y])
            den += w
    return num / den if den else 0.0


def numpy_focal_sigmoid(logits, target, gamma, alpha, ignore):
    x = logits.double().numpy()
    t = target.numpy()
    num, count = 0.0, 0
    for b in range(x.shape[0]):
        for idx in np.ndindex(*t.shape[1:]):
            if t[(b, *idx)] == ignore:
                continue
            count += 1
            for c in range(x.shape[1]):
                p = 1 / (1 + np.exp(-x[(b, c, *idx)]))
                if t[(b, *idx)] == c:
                    num += -alpha * (1 - p) ** gamma * np.log(p)
                else:
                    num += -(1 - alpha) * p**gamma * np.log(1 - p)
    return num / (count * x.shape[1])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), gamma=st.sampled_from([0.0, 0.5, 2.0]), weighted=st.booleans())
def test_focal_softmax_matches_numpy(seed, gamma, weighted):
    logits, target = rand_case(seed)
    g = torch.Generator().manual_seed(seed)
    weight = torch.rand(4, generator=g, dtype=torch.float64) + 0.1 if weighted else None
    alpha = torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    got = L.focal_loss(logits, target, gamma=gamma, alpha=alpha, weight=weight)
    want = numpy_focal_softmax(
        logits, target, gamma, alpha.numpy(), None if weight is None else weight.numpy(), 255
    )
    assert got.item() == pytest.approx(want, rel=1e-9)


def test_focal_gamma0_is_cross_entropy():
    logits, target = rand_case(1, dtype=torch.float32)
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])
    torch.testing.assert_close(
        L.focal_loss(logits, target, gamma=0.0, weight=w),
        F.cross_entropy(logits, target, weight=w, ignore_index=255),
    )


def test_focal_sigmoid_matches_numpy():
    logits, target = rand_case(2)
    got = L.focal_loss(logits, target, mode="sigmoid", gamma=2.0, alpha=0.3)
    assert got.item() == pytest.approx(numpy_focal_sigmoid(logits, target, 2.0, 0.3, 255), rel=1e-9)


def test_focal_gradcheck_and_empty():
    logits, target = rand_case(3, S=(2, 2, 1))
    logits.requires_grad_(True)
    for mode in ("softmax", "sigmoid"):
        assert torch.autograd.gradcheck(
            lambda x, m=mode: L.focal_loss(x, target, mode=m), (logits,)
        )
    all_ignored = torch.full_like(target, 255)
    out = L.focal_loss(logits, all_ignored)
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(logits.grad).all()
    none = L.focal_loss(logits.detach(), target, reduction="none")
    assert none.shape == target.shape and (none[target == 255] == 0).all()


def test_focal_half_precision_is_upcast_and_module():
    logits, target = rand_case(4, dtype=torch.float32)
    half = L.FocalLoss(gamma=2.0)(logits.half(), target)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(
        L.focal_loss(logits.half().float(), target).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="target"):
        L.focal_loss(logits, target[:, :1])
    with pytest.raises(ValueError, match="target values"):
        L.focal_loss(logits, torch.full_like(target, 7))


# ---------------------------------------------------------------- focal at saturated probabilities
# Closed forms in Python floats (float64), written in log space so that they are exact for any
# finite logit: log p and log(1 - p) from the logit gap, gradients derived by hand.
def _lse(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def focal_softmax_closed_form(x, y, gamma):
    """Loss and d loss / d x of -(1 - p_y)^gamma log p_y for one voxel's logits ``x``."""
    lse, rest = _lse(x), _lse([v for k, v in enumerate(x) if k != y])
    u = x[y] - rest
    log_p, log_1mp = -_softplus(-u), -_softplus(u)  # p_y = sigmoid(u)
    mod = math.exp(gamma * log_1mp)
    p_y = math.exp(log_p)
    grad = []
    for k, v in enumerate(x):
        if k == y:
            grad.append(-math.exp((1 + gamma) * log_1mp) + gamma * p_y * log_p * mod)
        else:
            p_k, q_k = math.exp(v - lse), math.exp(v - rest)  # q: softmax among the rest
            grad.append(p_k * mod - gamma * log_p * mod * q_k * p_y)
    return -mod * log_p, grad


def focal_sigmoid_closed_form(x, y, gamma, a):
    loss, grad = 0.0, []
    for k, z in enumerate(x):
        ls_pos, ls_neg = -_softplus(-z), -_softplus(z)  # log p, log(1 - p)
        if k == y:
            mod = math.exp(gamma * ls_neg)
            loss += -a * mod * ls_pos
            grad.append(-a * mod * (_sigmoid(-z) - gamma * _sigmoid(z) * ls_pos))
        else:
            mod = math.exp(gamma * ls_pos)
            loss += -(1 - a) * mod * ls_neg
            grad.append(-(1 - a) * mod * (gamma * _sigmoid(-z) * ls_neg - _sigmoid(z)))
    return loss, grad


def saturated_cases(m):
    """(logits, target) voxels of 3 classes: right and wrong by margin m, both ways round."""
    return [
        ([0.0, m, 0.0], 1),  # confidently right
        ([m, 0.0, 0.0], 1),  # confidently wrong
        ([0.0, -m, 0.0], 1),  # target far below the others
        ([-m, m, -m], 1),  # right by 2m
        ([m, -m, 0.5], 1),  # wrong by 2m
    ]


def assert_close_to_exact(got, exact, dtype):
    """``got`` (tensor) equals the exact values to the dtype's precision wherever they are
    representable as normal numbers; where they underflow, ``got`` is as small."""
    tiny = torch.finfo(dtype).tiny
    rtol = 2e-5 if dtype == torch.float32 else 1e-10
    g = got.double()
    e = torch.tensor(exact, dtype=torch.float64)
    assert torch.isfinite(g).all()
    normal = e.abs() >= tiny
    np.testing.assert_allclose(g[normal].numpy(), e[normal].numpy(), rtol=rtol, atol=0)
    assert (g[normal] != 0).all()  # no spurious zero gradient or value
    assert (g[~normal].abs() <= 4 * tiny).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["softmax", "sigmoid"])
@pytest.mark.parametrize("margin", [0.5, 20.0, 40.0, 100.0, 1000.0])
def test_focal_saturated_logits_match_closed_form(dtype, mode, margin):
    cases = saturated_cases(margin)
    x = torch.tensor([c[0] for c in cases], dtype=dtype).T.reshape(1, 3, len(cases))
    t = torch.tensor([[c[1] for c in cases]])
    for gamma in (0.25, 0.5, 1.0, 2.0):
        xx = x.clone().requires_grad_(True)
        alpha = 0.3 if mode == "sigmoid" else None
        loss = L.focal_loss(xx, t, mode=mode, gamma=gamma, alpha=alpha, reduction="none")
        loss.sum().backward()
        exact = [
            focal_softmax_closed_form(xv, y, gamma)
            if mode == "softmax"
            else focal_sigmoid_closed_form(xv, y, gamma, 0.3)
            for xv, y in ((x[0, :, i].double().tolist(), c[1]) for i, c in enumerate(cases))
        ]
        assert_close_to_exact(loss[0].detach(), [e[0] for e in exact], dtype)
        assert_close_to_exact(xx.grad[0].T.reshape(-1), [g for e in exact for g in e[1]], dtype)
        if margin >= 20:  # a confidently wrong voxel has an O(1) gradient
            gr = xx.grad[0]
            if mode == "softmax":  # on the target logit
                assert gr[1, 1].item() < -0.1 and gr[1, 4].item() < -0.1
            else:  # on the wrong class at +m and on the target at -m
                assert gr[0, 1].item() > 0.1 and gr[1, 2].item() < -0.1


def test_focal_closed_forms_agree_with_autograd_and_issue_case():
    # the closed forms above, checked against autograd of the plain formula where it is finite
    for xv, y in saturated_cases(3.0):
        x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        p = torch.softmax(x, 0)
        loss = -((1 - p[y]) ** 0.5) * torch.log(p[y])
        loss.backward()
        value, grad = focal_softmax_closed_form(xv, y, 0.5)
        assert loss.item() == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-10)
    # the reported case: gamma = 0.5, probability 1 - 4e-9 on the target, float32 and float64
    for dtype in (torch.float32, torch.float64):
        x = torch.zeros(1, 3, 2, 2, dtype=dtype)
        x[:, 1] = 20.0
        t = torch.ones(1, 2, 2, dtype=torch.long)
        for mode in ("softmax", "sigmoid"):
            xx = x.clone().requires_grad_(True)
            L.focal_loss(xx, t, gamma=0.5, mode=mode).backward()
            assert torch.isfinite(xx.grad).all() and (xx.grad != 0).any()


# ---------------------------------------------------------------- lovasz
def jaccard_loss(mistakes, fg):
    """Delta_J(M) = |M| / |fg ∪ M| for a set of mispredicted indices M."""
    union = set(fg) | set(mistakes)
    return len(mistakes) / len(union) if union else 0.0


def lovasz_by_permutations(errors, fg):
    """Lovász extension of the (submodular) Jaccard loss at ``errors``: the maximum over all
    orderings of sum_i e_pi(i) (Delta(pi_1..i) - Delta(pi_1..i-1)) (greedy vertices of the base
    polytope)."""
    n = len(errors)
    best = -math.inf
    for perm in itertools.permutations(range(n)):
        total, prev = 0.0, 0.0
        for i in range(n):
            cur = jaccard_loss(perm[: i + 1], fg)
            total += errors[perm[i]] * (cur - prev)
            prev = cur
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_lovasz_matches_defining_formula(seed):
    g = torch.Generator().manual_seed(seed)
    n, C = 6, 3
    probs = torch.softmax(torch.randn(n, C, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, C, (n,), generator=g)
    per_class = []
    for c in range(C):
        fg = (labels == c).double()
        errors = (fg - probs[:, c]).abs().tolist()
        per_class.append(lovasz_by_permutations(errors, [i for i in range(n) if labels[i] == c]))
    got = lovasz_softmax_flat(probs, labels, classes="all")
    assert got.item() == pytest.approx(float(np.mean(per_class)), abs=1e-12)


def test_lovasz_on_hard_predictions_is_one_minus_iou():
    g = torch.Generator().manual_seed(5)
    pred = torch.randint(0, 4, (1, 5, 6, 3), generator=g)
    target = torch.randint(0, 3, (1, 5, 6, 3), generator=g)
    target[0, 0] = 255
    probs = F.one_hot(pred, 4).movedim(-1, 1).double()
    valid = target != 255
    ious = []
    for c in target[valid].unique().tolist():  # "present" classes
        p, t = (pred == c) & valid, target == c
        ious.append((p & t).sum().item() / (p | t).sum().item())
    got = L.lovasz_softmax(probs, target, from_logits=False)
    assert got.item() == pytest.approx(1 - np.mean(ious), abs=1e-12)


def test_lovasz_ignore_per_sample_gradcheck_and_empty():
    logits, target = rand_case(6)
    keep = target != 255
    flat = logits.movedim(1, -1)[keep]
    torch.testing.assert_close(
        L.lovasz_softmax(logits, target), lovasz_softmax_flat(torch.softmax(flat, -1), target[keep])
    )
    per = L.lovasz_softmax(logits, target, per_sample=True)
    each = [L.lovasz_softmax(logits[b : b + 1], target[b : b + 1]) for b in range(2)]
    torch.testing.assert_close(per, torch.stack(each).mean())
    small = logits[:1, :, :2, :2, :1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.lovasz_softmax(x, target[:1, :2, :2, :1]), (small,))
    empty = L.lovasz_softmax(small, torch.full_like(target[:1, :2, :2, :1], 255))
    empty.backward()
    assert empty.item() == 0.0 and torch.isfinite(small.grad).all()


# ---------------------------------------------------------------- scene-class affinity
def numpy_scal_terms(p, t):
    terms = []
    if t.sum() > 0:
        terms += [-np.log((p * t).sum() / p.sum()), -np.log((p * t).sum() / t.sum())]
    if (1 - t).sum() > 0:
        terms.append(-np.log(((1 - p) * (1 - t)).sum() / (1 - t).sum()))
    return sum(terms)


def test_scal_losses_match_numpy():
    logits, target = rand_case(7, C=5, S=(4, 4, 3))
    probs = torch.softmax(logits, 1).movedim(1, -1).numpy()
    t = target.numpy()
    valid = t != 255
    p, tv = probs[valid], t[valid]
    geo = numpy_scal_terms(1 - p[:, 2], (tv != 2).astype(float))
    sem = np.mean(
        [numpy_scal_terms(p[:, c], (tv == c).astype(float)) for c in range(5) if (tv == c).any()]
    )
    assert L.geo_scal_loss(logits, target, empty_class=2).item() == pytest.approx(geo, rel=1e-9)
    assert L.sem_scal_loss(logits, target).item() == pytest.approx(sem, rel=1e-9)


@pytest.mark.parametrize("fill", ["empty", "ignored", "one_class"])
def test_scal_losses_finite_on_degenerate_frames(fill):
    logits, target = rand_case(8, C=3)
    logits.requires_grad_(True)
    target = {
        "empty": torch.zeros_like(target),
        "ignored": torch.full_like(target, 255),
        "one_class": torch.ones_like(target),
    }[fill]
    total = L.geo_scal_loss(logits, target, empty_class=0) + L.sem_scal_loss(logits, target)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(logits.grad).all()
    if fill == "ignored":
        assert total.item() == 0.0
    # an all-empty frame still penalises predicted occupancy through the specificity term
    if fill == "empty":
        assert L.GeoScalLoss(empty_class=0)(logits, target).item() > 0


def test_scal_gradcheck():
    logits, target = rand_case(9, C=3, S=(2, 2, 2), ignore_frac=0.0)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.geo_scal_loss(x, target, empty_class=1), (logits,))
    assert torch.autograd.gradcheck(lambda x: L.SemScalLoss()(x, target), (logits,))


# scene-class affinity at saturated probabilities: an independent log-space computation in Python
# floats, and MonoScene's released form (ratios fed to binary cross-entropy against 1)
def scal_terms_log_space(log_q, log_1mq, t):
    """-log precision - log recall - log specificity from per-voxel log q, log(1 - q)."""
    pos = [lq for lq, ti in zip(log_q, t, strict=True) if ti]
    neg = [l1 for l1, ti in zip(log_1mq, t, strict=True) if not ti]
    total = 0.0
    if pos:
        total += _lse(log_q) - _lse(pos) + math.log(len(pos)) - _lse(pos)
    if neg:
        total += math.log(len(neg)) - _lse(neg)
    return total


def scal_closed_form(voxels, labels, empty):
    """(geo, sem) of one batch given as lists of per-voxel logits and labels."""
    C = len(voxels[0])

    def log_pair(x, c):  # log p_c, log(1 - p_c) from the logit gap of class c
        u = x[c] - _lse([v for k, v in enumerate(x) if k != c])
        return -_softplus(-u), -_softplus(u)

    pairs = [[log_pair(x, c) for c in range(C)] for x in voxels]
    geo = scal_terms_log_space(
        [p[empty][1] for p in pairs], [p[empty][0] for p in pairs], [y != empty for y in labels]
    )
    sem = [
        scal_terms_log_space(
            [p[c][0] for p in pairs], [p[c][1] for p in pairs], [y == c for y in labels]
        )
        for c in range(C)
        if c in labels
    ]
    return geo, sum(sem) / len(sem)


def monoscene_scal(logits, target, empty):
    """MonoScene's geo_scal_loss / sem_scal_loss semantics (BCE of each ratio against 1, so
    each term is min(-log ratio, 100)), with a configurable empty class."""
    p = torch.softmax(logits, 1).movedim(1, -1).reshape(-1, logits.shape[1])
    t = target.reshape(-1)
    p, t = p[t != 255], t[t != 255]

    def bce1(r):
        return F.binary_cross_entropy(r, torch.ones_like(r))

    q, occ = 1 - p[:, empty], (t != empty).to(p.dtype)
    inter = (q * occ).sum()
    geo = bce1(inter / q.sum()) + bce1(inter / occ.sum())
    geo = geo + bce1(((1 - occ) * p[:, empty]).sum() / (1 - occ).sum())
    sem, count = 0.0, 0
    for c in range(p.shape[1]):
        fg = (t == c).to(p.dtype)
        if fg.sum() == 0:
            continue
        count += 1
        nom = (p[:, c] * fg).sum()
        sem = sem + bce1(nom / p[:, c].sum()) + bce1(nom / fg.sum())
        if (1 - fg).sum() > 0:
            sem = sem + bce1(((1 - p[:, c]) * (1 - fg)).sum() / (1 - fg).sum())
    return geo, sem / count


def confidently_wrong(m, dtype):
    """Six voxels of 3 classes (0 empty); each predicts the next class with margin m (a number,
    or one per voxel)."""
    labels = [0, 0, 1, 1, 2, 2]
    margins = m if isinstance(m, tuple) else (m,) * 6
    voxels = [
        [mi if k == (y + 1) % 3 else 0.0 for k in range(3)]
        for y, mi in zip(labels, margins, strict=True)
    ]
    logits = torch.tensor(voxels, dtype=dtype).T.reshape(1, 3, 6)
    return logits, torch.tensor([labels]), voxels, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "margin", [0.5, 20.0, 100.0, 1000.0, (0.5, 100.0, 3.0, 1000.0, 30.0, 60.0)]
)
def test_scal_losses_saturated_match_log_space_closed_form(dtype, margin):
    logits, target, voxels, labels = confidently_wrong(margin, dtype)
    x = logits.clone().requires_grad_(True)
    geo = L.geo_scal_loss(x, target, empty_class=0)
    sem = L.sem_scal_loss(x, target)
    want_geo, want_sem = scal_closed_form(voxels, labels, 0)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert geo.item() == pytest.approx(want_geo, rel=rtol)
    assert sem.item() == pytest.approx(want_sem, rel=rtol)
    (geo + sem).backward()
    assert torch.isfinite(x.grad).all()
    if min(margin if isinstance(margin, tuple) else (margin,)) >= 20:
        # each wrong voxel's target logit gets a gradient of order 1 (the old clamp at
        # -log(1e-7) gave exactly 0 here), pushing it up
        target_grad = x.grad[0].gather(0, target)
        assert (target_grad < -0.01).all()


def test_scal_losses_saturated_gradients_match_finite_differences():
    logits, target, _, _ = confidently_wrong(100.0, torch.float64)
    logits = logits + 0.1 * torch.randn(
        logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    x = logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: L.geo_scal_loss(v, target, empty_class=0), (x,))
    assert torch.autograd.gradcheck(lambda v: L.sem_scal_loss(v, target), (x,))


def test_scal_losses_equal_monoscene_until_its_bce_saturates():
    random = rand_case(11, C=3, S=(4, 4, 2), dtype=torch.float32)
    margin20 = confidently_wrong(20.0, torch.float64)[:2]  # every ratio above e^-100
    for (logits, target), rel in ((random, 1e-5), (margin20, 1e-12)):
        ours = (L.geo_scal_loss(logits, target, empty_class=0), L.sem_scal_loss(logits, target))
        for got, want in zip(ours, monoscene_scal(logits, target, 0), strict=True):
            assert got.item() == pytest.approx(want.item(), rel=rel)
    # margin 1000: MonoScene's terms stop at 100 each (at most 300 per class); ours go on
    logits, target, voxels, labels = confidently_wrong(1000.0, torch.float64)
    mono_geo, mono_sem = monoscene_scal(logits, target, 0)
    assert mono_geo.item() <= 300 and mono_sem.item() <= 300
    assert L.geo_scal_loss(logits, target, empty_class=0).item() > 1000
    assert L.sem_scal_loss(logits, target).item() > 1000


# ---------------------------------------------------------------- depth
def test_depth_huber_values_masks_and_gradcheck():
    pred = torch.tensor([[1.0, 2.0, 5.0, 3.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[1.5, 4.0, 0.0, float("nan")]], dtype=torch.float64)
    # valid: the first two; residuals -0.5 (quadratic: 0.125) and -2 (linear: 2 - 0.5 = 1.5)
    assert L.depth_huber_loss(pred, target).item() == pytest.approx((0.125 + 1.5) / 2)
    assert L.depth_huber_loss(pred, target, reduction="sum").item() == pytest.approx(1.625)
    mask = torch.tensor([[False, True, True, True]])
    assert L.DepthHuberLoss(delta=0.5)(pred, target, mask).item() == pytest.approx(0.5 * (2 - 0.25))
    empty = L.depth_huber_loss(pred, target, torch.zeros_like(mask))
    empty.backward()
    assert empty.item() == 0.0 and torch.isfinite(pred.grad).all() and (pred.grad == 0).all()
    p = torch.rand(2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: L.depth_huber_loss(
            x,
            torch.rand(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            * 3,
            delta=0.3,
        ),
        (p,),
    )


# ---------------------------------------------------------------- ssim and photometric
def numpy_ssim_box3(x, y, c1=1e-4, c2=9e-4):
    xp = np.pad(x, 1, mode="reflect")
    yp = np.pad(y, 1, mode="reflect")
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            a, b = xp[i : i + 3, j : j + 3], yp[i : i + 3, j : j + 3]
            mx, my = a.mean(), b.mean()
            vx, vy = (a * a).mean() - mx**2, (b * b).mean() - my**2
            cov = (a * b).mean() - mx * my
            out[i, j] = (
                (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return out


def test_ssim_matches_numpy_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 5, 6, generator=g, dtype=torch.float64)
    y = torch.rand(1, 2, 5, 6, generator=g, dtype=torch.float64)
    got = L.ssim(x, y)
    for c in range(2):
        np.testing.assert_allclose(
            got[0, c].numpy(), numpy_ssim_box3(x[0, c].numpy(), y[0, c].numpy()), rtol=1e-10
        )
    torch.testing.assert_close(L.ssim(x, x, window="gaussian", window_size=5), torch.ones_like(x))
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: L.ssim(a, y, window="gaussian", window_size=3), (xr,))


def pinhole(B=1, f=10.0, W=12, H=8):
    return torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float64).expand(
        B, 3, 3
    )


def test_photometric_alignment_on_translated_plane():
    H, W, D = 8, 12, 5.0
    K = pinhole(W=W, H=H)
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64)
    # camera moves so that a plane at depth D shifts by exactly 2 pixels: u_s = u_t + f tx / D
    T = torch.eye(4, dtype=torch.float64)[None].clone()
    T[0, 0, 3] = 2 * D / 10.0
    source = torch.zeros_like(target)
    source[..., 2:] = target[..., :-2]
    depth = torch.full((1, H, W), D, dtype=torch.float64)
    warp = L.warp_to_target(source, depth, T, K)
    assert warp.valid[0, :, : W - 2].all() and not warp.valid[0, :, W - 2 :].any()
    torch.testing.assert_close(warp.image[..., : W - 2], target[..., : W - 2])
    assert L.photometric_alignment_loss(target, source, depth, T, K).item() == pytest.approx(
        0, abs=1e-12
    )
    # Bian et al. weight: a source depth of 3 D gives |D - 3D| / (D + 3D) = 0.5 -> M = 0.5
    noisy = torch.rand_like(source)
    plain = L.photometric_alignment_loss(target, noisy, depth, T, K)
    half = L.photometric_alignment_loss(target, noisy, depth, T, K, source_depth=3 * depth)
    assert half.item() == pytest.approx(0.5 * plain.item(), rel=1e-9)
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    assert L.photometric_alignment_loss(target, noisy, depth, T, K, mask=mask).item() == 0.0


def test_photometric_gradients_reach_depth():
    H, W = 6, 8
    K = pinhole(W=W, H=H)
    g = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64)
    source = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64)
    depth = (4 + torch.rand(1, H, W, generator=g, dtype=torch.float64)).requires_grad_(True)
    T = torch.eye(4, dtype=torch.float64)[None].clone()
    T[0, :3, 3] = torch.tensor([0.3, -0.1, 0.2])
    loss = L.PhotometricAlignmentLoss(ssim_weight=0.85)(target, source, depth, T, K)
    loss.backward()
    assert torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_depth_reconstruction_consistency_matches_loop():
    H, W = 4, 5
    K = pinhole(W=W, H=H, f=3.0)
    g = torch.Generator().manual_seed(3)
    dist = 1 + torch.rand(1, H, W, generator=g, dtype=torch.float64)
    depth = 1 + torch.rand(1, H, W, generator=g, dtype=torch.float64)
    Kinv = torch.linalg.inv(K[0])
    want = np.mean(
        [
            abs(
                dist[0, v, u].item()
                / (Kinv @ torch.tensor([u + 0.5, v + 0.5, 1.0], dtype=torch.float64)).norm().item()
                - depth[0, v, u].item()
            )
            for v in range(H)
            for u in range(W)
        ]
    )
    assert L.depth_reconstruction_consistency_loss(dist, depth, K).item() == pytest.approx(
        want, rel=1e-12
    )
    # z-depth recovered exactly from a consistent distance map gives 0
    rays = (
        Kinv
        @ torch.stack(
            torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")[::-1]
            + (torch.ones(H, W),),
            dim=-1,
        )
        .double()
        .reshape(-1, 3)
        .T
    ).norm(dim=0)
    consistent = depth * rays.reshape(1, H, W)
    assert L.depth_reconstruction_consistency_loss(consistent, depth, K).item() == pytest.approx(
        0, abs=1e-12
    )


def test_rgb_reconstruction_loss_terms():
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    b = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    assert L.rgb_reconstruction_loss(a, a).item() == pytest.approx(0, abs=1e-12)
    assert L.rgb_reconstruction_loss(a, b, betas=(0.0, 1.0)).item() == pytest.approx(
        (a - b).abs().mean().item()
    )
    ssim_term = ((1 - L.ssim(b, a)) / 2).mean().item()
    full = L.rgb_reconstruction_loss(a, b).item()
    assert full == pytest.approx(0.85 * ssim_term + 0.15 * (a - b).abs().mean().item(), rel=1e-12)
    mask = torch.zeros(2, 6, 6, dtype=torch.bool)
    mask[1] = True
    assert L.rgb_reconstruction_loss(a, b, mask).item() == pytest.approx(
        L.rgb_reconstruction_loss(a[1:], b[1:]).item()
    )


# ---------------------------------------------------------------- planar
def test_planar_regularization_values_weights_and_gradcheck():
    points = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.5]], dtype=torch.float64)
    neighbors = torch.tensor(
        [[[5.0, 3.0, 0.0], [0.0, 0.0, 2.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 0.5]]],
        dtype=torch.float64,
    )
    normals = torch.tensor([[0.0, 0.0, 3.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    # point 0: offsets along z: 1, -1 -> 2; point 1: offsets along y: 2, 1 -> 5
    assert L.planar_regularization_loss(points, neighbors, normals).item() == pytest.approx(7.0)
    labels = torch.tensor([0, 1])
    weighted = L.PlanarRegularizationLoss(torch.tensor([1.0, 0.1]))(
        points, neighbors, normals, labels
    )
    assert weighted.item() == pytest.approx(2.0 + 0.5)
    valid = torch.tensor([False, True])
    assert (
        L.planar_regularization_loss(
            points, neighbors, normals, valid=valid, reduction="mean"
        ).item()
        == 5.0
    )
    p = points.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: L.planar_regularization_loss(
            x, neighbors, normals, kappa=torch.tensor([0.3, 1.0], dtype=torch.float64)
        ),
        (p,),
    )
    empty = L.planar_regularization_loss(points[:0], neighbors[:0], normals[:0], reduction="mean")
    assert empty.item() == 0.0


# ---------------------------------------------------------------- modules
def test_loss_modules_check_options_at_construction():
    bad = [
        (lambda: L.FocalLoss(gamma=-1.0), ValueError, "gamma"),
        (lambda: L.FocalLoss(mode="softmx"), ValueError, "mode"),
        (lambda: L.FocalLoss(mode="sigmoid", alpha=torch.ones(3)), ValueError, "alpha"),
        (lambda: L.FocalLoss(reduction="avg"), ValueError, "reduction"),
        (lambda: L.FocalLoss(weight=torch.ones(2, 2)), ValueError, "weight"),
        (lambda: L.DepthHuberLoss(delta=0.0), ValueError, "delta"),
        (lambda: L.DepthHuberLoss(min_depth=5.0, max_depth=1.0), ValueError, "min_depth"),
        (lambda: L.LovaszSoftmaxLoss(classes="some"), ValueError, "classes"),
        (lambda: L.LovaszSoftmaxLoss(classes=[0.5]), TypeError, "classes"),
        (lambda: L.PhotometricAlignmentLoss(ssim_weight=2.0), ValueError, "ssim_weight"),
        (lambda: L.ReconstructionConsistencyLoss(window_size=2), ValueError, "window_size"),
        (lambda: L.ReconstructionConsistencyLoss(betas=(1.0,)), ValueError, "betas"),
        (lambda: L.PlanarRegularizationLoss(torch.ones(2, 2)), ValueError, "class_weights"),
        (lambda: L.GeoScalLoss(empty_class=-1), ValueError, "empty_class"),
    ]
    for make, error, word in bad:
        with pytest.raises(error, match=word):
            make()


def test_loss_modules_equal_their_functions_and_show_their_options():
    logits, target = rand_case(12, dtype=torch.float32)
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])
    focal = L.FocalLoss(mode="sigmoid", gamma=0.5, alpha=0.3, weight=w, ignore_index=None)
    assert repr(focal) == (
        "FocalLoss(mode='sigmoid', gamma=0.5, alpha=0.3, ignore_index=None, reduction='mean', "
        "weight=[C] tensor)"
    )
    safe = target.clamp(max=3)
    torch.testing.assert_close(
        focal(logits, safe),
        L.focal_loss(
            logits, safe, mode="sigmoid", gamma=0.5, alpha=0.3, weight=w, ignore_index=None
        ),
    )
    per_class = L.FocalLoss(alpha=torch.tensor([0.1, 0.2, 0.3, 0.4]), weight=w).double()
    assert per_class.weight.dtype == torch.float64 and "weight" in per_class.state_dict()
    torch.testing.assert_close(
        per_class(logits.double(), target),
        L.focal_loss(logits.double(), target, alpha=per_class.alpha_vector, weight=w.double()),
    )
    lovasz = L.LovaszSoftmaxLoss(classes=[1, 2], per_sample=True)
    assert "classes=[1, 2]" in repr(lovasz) and "per_sample=True" in repr(lovasz)
    torch.testing.assert_close(
        lovasz(logits, target), L.lovasz_softmax(logits, target, classes=[1, 2], per_sample=True)
    )
    depth = L.DepthHuberLoss(delta=0.3, max_depth=2.0, reduction="sum")
    pred, gt = logits[:, 0].exp(), logits[:, 1].exp()
    torch.testing.assert_close(
        depth(pred, gt), L.depth_huber_loss(pred, gt, delta=0.3, max_depth=2.0, reduction="sum")
    )
    geo, sem = L.GeoScalLoss(empty_class=2, ignore_index=None), L.SemScalLoss()
    torch.testing.assert_close(
        geo(logits, safe), L.geo_scal_loss(logits, safe, empty_class=2, ignore_index=None)
    )
    torch.testing.assert_close(sem(logits, target), L.sem_scal_loss(logits, target))
    assert repr(geo) == "GeoScalLoss(empty_class=2, ignore_index=None)"
