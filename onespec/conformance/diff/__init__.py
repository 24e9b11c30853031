"""``onespec diff``: the first node where a framework's network stops computing the spec.

The same canonical state is loaded into the framework's network and into the float64 reference;
one forward records every node's input and output on both sides. Nodes are walked in execution
order (the spec's pre-order). Each leaf is *replayed*: the framework's module alone is run on the
reference's input to that node, so its error is its own and not inherited from upstream; the first
leaf off by more than its bound (relative L2) is the culprit. When every leaf is right, the first
combinator (residual add, concat, gate) off by more than its bound is.

For the culprit a reproducer is written: ``node.json`` (a one-node ``ModelSpec``), ``case.npz``
(the input, the node's tensors, the reference output, the bound) and the command that replays
it: ``onespec diff --replay DIR --backend FW``.

Modules, one concern each: :mod:`.compare` (``diff``), :mod:`.forward` and :mod:`.backward` (the
walks), :mod:`.reference` (the float64 autograd reference from the backend contract),
:mod:`.reproducer` (write and replay), :mod:`.foreign` (hand-written networks), :mod:`.child`
(``diff`` in its own process), :mod:`.report` and :mod:`.common`.
"""
from .child import diagnose
from .common import TOL, DiffError, environment, grad_err, rel, stat_err
from .compare import diff
from .foreign import diff_foreign, module_map
from .report import DiffReport
from .reproducer import node_spec, replay, write_reproducer

__all__ = ["TOL", "DiffError", "DiffReport", "diagnose", "diff", "diff_foreign", "environment", "grad_err",
           "module_map", "node_spec", "rel", "replay", "stat_err", "write_reproducer"]
