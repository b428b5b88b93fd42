"""The fused sine-stack kernel of :class:`~inr_gon.nn.siren.LatentSiren`: the plain stack in
differentiable ops, and an ``autograd.Function`` whose backward reuses its own buffers.

Shapes: ``N`` points (any leading dimensions flattened), ``H`` hidden width, ``O`` outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__: list[str] = []      # internal to LatentSiren


def _sine_trunk(u1: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The sine stack in ordinary differentiable ops.

    Args:
        u1: ``(..., H)`` first pre-activation (already scaled by ``w0_first``).
        params: ``[W_2, b_2, ..., W_L, b_L, W_out, b_out]``, hidden weights/biases already
            scaled by their ``w0``.
    Returns:
        raw output ``(..., O)`` and the pre-activations ``[u1, ..., u_L]``.
    """
    us = [u1]
    h = torch.sin(u1)
    for W, b in zip(params[:-2:2], params[1:-2:2]):
        us.append(F.linear(h, W, b))
        h = torch.sin(us[-1])
    return F.linear(h, params[-2], params[-1]), us


class _FusedSineTrunk(torch.autograd.Function):
    """:func:`_sine_trunk` with a hand-written backward that reuses its own buffers.

    Autograd's backward of the plain stack allocates three ``(N, H)`` tensors per sine layer
    (``cos u``, ``g · cos u`` and the next ``g``); on the CPU each fresh tensor above glibc's
    mmap threshold costs a page fault per 4 KiB when first written. This backward computes
    ``cos u`` in place in the saved pre-activation, multiplies the incoming gradient into it
    and writes the next gradient into a no-longer-needed saved activation, so the backward
    allocates at most one ``(N, H)`` tensor in all. The arithmetic is the same as autograd's.
    The activations are kept on the node itself, so saved-tensor hooks (CPU offloading,
    ``torch.utils.checkpoint``) do not see them: use ``LatentSiren(..., fused=False)`` there.

    The in-place backward runs once. A second backward (``retain_graph=True``) or a
    differentiable one (``create_graph=True``, e.g. a gradient penalty) recomputes the stack
    from the saved inputs with ordinary ops, so every use stays correct.
    Shapes: ``u1 (N, H)``, params as in :func:`_sine_trunk`; returns ``(N, O)``.
    """

    @staticmethod
    def forward(ctx, u1, *params):
        hs, us = [], [u1]
        h = torch.sin(u1)
        for W, b in zip(params[:-2:2], params[1:-2:2]):
            hs.append(h)
            us.append(torch.addmm(b, h, W.t()))
            h = torch.sin(us[-1])
        hs.append(h)
        ctx.save_for_backward(u1, *params)
        ctx.acts = (us, hs)               # intermediates owned by this node only
        return torch.addmm(params[-1], h, params[-2].t())

    @staticmethod
    def backward(ctx, g):
        u1, *params = ctx.saved_tensors
        need = ctx.needs_input_grad
        if ctx.acts is None or torch.is_grad_enabled():
            return _FusedSineTrunk._recompute(ctx, g, u1, params)
        us, hs = ctx.acts
        ctx.acts = None                   # consumed: the buffers are overwritten below
        grads: list[torch.Tensor | None] = [None] * len(params)
        W_out = params[-2]                # (O, H)
        if need[-2]:
            grads[-2] = g.t() @ hs[-1]
        if need[-1]:
            grads[-1] = g.sum(0)
        last = len(hs) - 1                # index of the last sine layer
        cos_last = us[last].cos_() if last > 0 else torch.cos(u1)
        if W_out.shape[0] == 1:           # g W_out is an outer product: two in-place scalings
            gu = cos_last.mul_(W_out).mul_(g)
        else:
            gu = cos_last.mul_(g @ W_out)
        for l in range(last, 0, -1):      # hidden layer l: hs[l-1] -> us[l]
            W = params[2 * l - 2]
            if need[2 * l - 1]:
                grads[2 * l - 2] = gu.t() @ hs[l - 1]
            if need[2 * l]:
                grads[2 * l - 1] = gu.sum(0)
            gh = torch.mm(gu, W, out=hs[l])                       # hs[l] is no longer needed
            gu = gh.mul_(us[l - 1].cos_() if l > 1 else torch.cos(u1, out=hs[0]))
        return (gu if need[0] else None, *grads)

    @staticmethod
    def _recompute(ctx, g, u1, params):
        inputs = [u1, *params]
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            if not create:
                inputs = [t.detach().requires_grad_(n) for t, n in zip(inputs, ctx.needs_input_grad)]
            wanted = [t for t, n in zip(inputs, ctx.needs_input_grad) if n]
            out, _ = _sine_trunk(inputs[0], inputs[1:])
            got = iter(torch.autograd.grad(out, wanted, g, create_graph=create, allow_unused=True))
        return tuple(next(got) if n else None for n in ctx.needs_input_grad)

