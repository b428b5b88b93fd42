"""The fused sine-stack kernel of :class:`~inr_gon.nn.siren.LatentSiren`: the plain stack in
differentiable ops, and an ``autograd.Function`` whose backward reuses its own buffers.

Shapes: ``N`` points (any leading dimensions flattened), ``H`` hidden width, ``O`` outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__: list[str] = []  # internal to LatentSiren


def _sine_trunk(
    u1: torch.Tensor, params: list[torch.Tensor], shifts: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The sine stack in ordinary differentiable ops.

    Args:
        u1: ``(..., H)`` first pre-activation (already scaled by ``w0_first``).
        params: ``[W_2, b_2, ..., W_L, b_L, W_out, b_out]``, hidden weights/biases already
            scaled by their ``w0``.
        shifts: ``None`` or ``(B, L - 1, H)``, added to the hidden pre-activations of sample
            ``b`` (``u1`` is then ``(B, ..., H)``), already scaled by ``w0``.
    Returns:
        raw output ``(..., O)`` and the pre-activations ``[u1, ..., u_L]``.
    """
    us = [u1]
    h = torch.sin(u1)
    for l, (W, b) in enumerate(zip(params[:-2:2], params[1:-2:2])):
        u = F.linear(h, W, b)
        if shifts is not None:  # in u's precision (bf16 under autocast: no float32 promotion)
            u = u + shifts[:, l].to(u.dtype).reshape(shifts.shape[0], *[1] * (u.dim() - 2), -1)
        us.append(u)
        h = torch.sin(u)
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
    Shapes: ``u1 (N, H)`` with ``N = B·P`` when ``shifts`` ``(B, L - 1, H)`` are given (sample
    ``b``'s rows contiguous), params as in :func:`_sine_trunk`; returns ``(N, O)``.
    """

    @staticmethod
    def forward(ctx, u1, shifts, *params):
        hs, us = [], [u1]
        h = torch.sin(u1)
        for l, (W, b) in enumerate(zip(params[:-2:2], params[1:-2:2])):
            hs.append(h)
            u = torch.addmm(b, h, W.t())
            if shifts is not None:
                u.view(shifts.shape[0], -1, u.shape[-1]).add_(shifts[:, l, None])
            us.append(u)
            h = torch.sin(u)
        hs.append(h)
        ctx.save_for_backward(u1, shifts, *params)
        ctx.acts = (us, hs)  # intermediates owned by this node only
        return torch.addmm(params[-1], h, params[-2].t())

    @staticmethod
    def backward(ctx, g):
        u1, shifts, *params = ctx.saved_tensors
        need = ctx.needs_input_grad[:1] + ctx.needs_input_grad[2:]  # as if shifts were not there
        if ctx.acts is None or torch.is_grad_enabled():
            return _FusedSineTrunk._recompute(ctx, g, u1, shifts, params)
        us, hs = ctx.acts
        ctx.acts = None  # consumed: the buffers are overwritten below
        grads: list[torch.Tensor | None] = [None] * len(params)
        gs = torch.empty_like(shifts) if shifts is not None and ctx.needs_input_grad[1] else None
        W_out = params[-2]  # (O, H)
        if need[-2]:
            grads[-2] = g.t() @ hs[-1]
        if need[-1]:
            grads[-1] = g.sum(0)
        last = len(hs) - 1  # index of the last sine layer
        cos_last = us[last].cos_() if last > 0 else torch.cos(u1)
        if W_out.shape[0] == 1:  # g W_out is an outer product: two in-place scalings
            gu = cos_last.mul_(W_out).mul_(g)
        else:
            gu = cos_last.mul_(g @ W_out)
        for l in range(last, 0, -1):  # hidden layer l: hs[l-1] -> us[l]
            W = params[2 * l - 2]
            if need[2 * l - 1]:
                grads[2 * l - 2] = gu.t() @ hs[l - 1]
            if need[2 * l]:
                grads[2 * l - 1] = gu.sum(0)
            if gs is not None:
                gs[:, l - 1] = gu.view(gs.shape[0], -1, gu.shape[-1]).sum(1)
            gh = torch.mm(gu, W, out=hs[l])  # hs[l] is no longer needed
            gu = gh.mul_(us[l - 1].cos_() if l > 1 else torch.cos(u1, out=hs[0]))
        return (gu if need[0] else None, gs, *grads)

    @staticmethod
    def _recompute(ctx, g, u1, shifts, params):
        inputs = [u1, shifts, *params]
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            if not create:
                inputs = [
                    t if t is None else t.detach().requires_grad_(n) for t, n in zip(inputs, ctx.needs_input_grad)
                ]
            wanted = [t for t, n in zip(inputs, ctx.needs_input_grad) if n]
            u = inputs[0] if shifts is None else inputs[0].view(shifts.shape[0], -1, u1.shape[-1])
            out, _ = _sine_trunk(u, inputs[2:], inputs[1])
            got = iter(torch.autograd.grad(out.reshape(g.shape), wanted, g, create_graph=create, allow_unused=True))
        return tuple(next(got) if n else None for n in ctx.needs_input_grad)
