"""The generated file's text: docstring, imports, helpers, stage tables, block classes, network."""
from __future__ import annotations

import builtins
import keyword
import re
import textwrap

from .layout import WIDTH, Code, Model, conventions, lit, merge_dim, skipped, variadic

_IND = "    "


def attr(name: str) -> str:
    return f"self.{name}" if name.isidentifier() else f"getattr(self, {name!r})"


def call_text(head: str, items: list[str], indent: str, tail: str = ")", lead: int = 0) -> list[str]:
    """``head(item, item)`` on one line, or one item a line where that line (after ``lead``
    characters written before it, and 2 after) is longer than WIDTH."""
    one = f"{indent}{head}({', '.join(items)}{tail}"
    if len(one) + lead + 2 <= WIDTH or not items:
        return [one]
    return [f"{indent}{head}("] + [f"{indent}{_IND}{it}," for it in items] + [f"{indent}{tail}"]


def packed(cells: list[str], tail: str) -> list[str]:
    """A table row ``(a, b, ...)``: on one line, or its values filling lines of WIDTH."""
    one = f"{_IND}({', '.join(cells)}{tail}"
    if len(one) <= WIDTH:
        return [one]
    lines, cur = [f"{_IND}("], ""
    for c in cells:
        if cur and len(_IND * 2) + len(cur) + len(c) + 2 > WIDTH:
            lines.append(_IND * 2 + cur.rstrip())
            cur = ""
        cur += f"{c}, "
    return lines + [_IND * 2 + cur.rstrip(), f"{_IND}{tail}"]


class Writer:
    def __init__(self, m: Model):
        self.m, self.ops = m, m.ops
        self.tables: list[str] = []
        self.table_names: set[str] = set()
        self.uses_seq = False

    # -- expressions ------------------------------------------------------------------------
    def expr(self, path: str, rel: str, resolve, indent: str, lead: int = 0) -> list[str]:
        """Lines of the expression that builds the node at ``path`` (first line unindented)."""
        m, n = self.m, self.m.node[path]
        if n.is_leaf:
            c = m.call(path)
            items = []
            for a in c.args:
                v = resolve((rel, a.label))
                if a.keyword and not isinstance(v, Code) and v == a.default and type(v) is type(a.default):
                    continue
                items.append(f"{a.label}={text(v)}" if a.keyword else text(v))
            lines = call_text(text(resolve((rel, "layer"))), items, indent, lead=lead)
        elif path in m.kind_of:
            k = m.kind_of[path]
            lines = call_text(k.cls, [text(resolve((rel, p))) for p, _ in k.params], indent, lead=lead)
        else:
            lines = self.sequential(path, rel, resolve, indent)
        lines[0] = lines[0][len(indent):]
        return lines

    def sequential(self, path: str, rel: str, resolve, indent: str) -> list[str]:
        self.uses_seq = True
        kids = self.m.node[path].children()
        out, i = [f"{indent}{self.ops.SEQUENTIAL}("], 0
        while i < len(kids):
            cp = f"{path}.{kids[i].name}"
            k = self.m.kind_of.get(cp)
            j = i
            while k is not None and j < len(kids) and self.m.kind_of.get(f"{path}.{kids[j].name}") is k:
                j += 1
            if k is not None and j - i >= 2:
                table = self.table(path, k, kids[i:j], rel, resolve)
                out.append(f"{indent}{_IND}*[(name, {k.cls}(*row)) for name, *row in {table}],")
                i = j
                continue
            e = self.expr(cp, f"{rel}.{kids[i].name}", resolve, indent + _IND, len(kids[i].name) + 6)
            out.append(f"{indent}{_IND}({kids[i].name!r}, {e[0]}")
            out += e[1:]
            out[-1] += "),"
            i += 1
        out.append(f"{indent})")
        return out

    def table(self, path: str, k, kids, rel: str, resolve) -> str:
        base = (path.replace(".", "_") + "_" if path else "") + k.cls
        name, i = base.upper(), 2
        while name in self.table_names:
            name, i = f"{base.upper()}_{i}", i + 1
        self.table_names.add(name)
        cols = ", ".join(["name"] + [p for p, _ in k.params])
        rows = []
        for c in kids:
            cells = [repr(c.name)] + [text(resolve((rel + "." + c.name, p))) for p, _ in k.params]
            rows += packed(cells, ",)," if len(cells) == 1 else "),")
        comment = textwrap.wrap(f"{k.cls} blocks of {path}: ({cols})", WIDTH - 2)
        self.tables.append("".join(f"# {c}\n" for c in comment) + f"{name} = [\n" + "\n".join(rows) + "\n]\n")
        return name

    # -- classes ---------------------------------------------------------------------------
    def init_lines(self, parent, path: str, resolve) -> list[str]:
        ind = _IND * 2
        lines = []
        for key, _ in (self.m.own_slots(path) if path else []):
            lines.append(f"{ind}self._{key[1]} = {text(resolve(key))}")
        kids = parent.children() if parent is not None else self.m.spec.layers
        for c in kids:
            cp = f"{path}.{c.name}" if path else c.name
            if skipped(parent, c):
                continue
            if c.name.isidentifier():
                head, tail = f"self.{c.name} = ", ""
            else:  # registered by a call that closes after the layer's last line
                head, tail = self.ops.register(repr(c.name), "\0").split("\0")
            e = self.expr(cp, c.name, resolve, ind, len(head) + len(tail))
            e[0] = f"{ind}{head}{e[0]}"
            e[-1] += tail
            lines += e
        return lines

    def forward_lines(self, n, path: str) -> tuple[str, list[str]]:
        """The forward's parameters and body of the block ``n`` at ``path``."""
        if n.op == "graph":
            return self.graph_forward(n, path)
        return "x", self.block_forward(n)

    def block_forward(self, n) -> list[str]:
        ind = _IND * 2
        if n.op == "seq":
            return [f"{ind}x = {attr(c.name)}(x)" for c in n.layers] + [f"{ind}return x"]
        if n.op == "scale":
            return [f"{ind}return x * {attr(n.gate.name)}(x)"]
        if n.op == "shift_max":
            return [f"{ind}return shift_max(x, {attr(n.gate.name)}(x), self._shape, self._groups, self._fusions,",
                    f"{ind}                 self._scale, self._init_a, self._init_b)"]
        lines, outs = [], []
        if n.split is not None:
            lines.append(f"{ind}xs = {self.ops.SPLIT.format('x', 'self._split')}")
        for i, b in enumerate(n.branches):
            arg = f"xs[{i}]" if n.split is not None else "x"
            outs.append(arg if n.split is None and b.op == "identity" else f"{attr(b.name)}({arg})")
        if n.merge == "concat":
            return lines + [f"{ind}return {self.ops.CAT.format('[' + ', '.join(outs) + ']')}"]
        if n.merge == "add":
            return lines + [f"{ind}return {' + '.join(outs)}"]
        y = outs[0]
        for o in outs[1:]:
            y = self.ops.MAXIMUM.format(y, o)
        return lines + [f"{ind}return {y}"]

    def kind_class(self, k) -> str:
        n = self.m.node[k.paths[0]]
        doc = self.ops.DOCS.get(n.op, "")
        where = ", ".join(k.paths[:3]) + (f" and {len(k.paths) - 3} more" if len(k.paths) > 3 else "")
        params = "".join(f", {p}" for p, _ in k.params)
        head = f"class {k.cls}({self.ops.BASE}):\n"
        sig = f"    def __init__(self{params}):"
        if len(sig) > WIDTH:
            names = ["self"] + [p for p, _ in k.params]
            sig = "    def __init__(\n" + "".join(f"        {p},\n" for p in names) + "    ):"
        said = textwrap.wrap(f'"""{doc}{" " if doc else ""}In the spec: {where}."""', WIDTH - 4)
        body = [f"    {line}" for line in said] + ["", sig, "        super().__init__()"]
        body += self.init_lines(n, k.paths[0], lambda key: k.slots[key])
        params, lines = self.forward_lines(n, k.paths[0])
        body += ["", f"    def {self.ops.FORWARD}(self, {params}):"] + lines
        return head + "\n".join(body) + "\n"

    def network(self, cls: str) -> str:
        slots = dict(self.m.child_slots(None, "", ""))
        m = self.m
        nc = m.spec.meta.num_classes
        body = [f"class {cls}({self.ops.BASE}):", f'    """{m.spec.name}: input {tuple(m.spec.input_shape)} '
                f'(channels first, no batch dimension)."""', "",
                f"    def __init__(self, num_classes={nc}):" if nc else "    def __init__(self):",
                "        super().__init__()"]
        body += self.init_lines(None, "", lambda key: slots[key])
        if m.spec.wired:
            params, lines = self.graph_forward(m.spec.root_graph(), "")
        else:
            params = "x"
            lines = [f"        x = {attr(layer.name)}(x)" for layer in m.spec.layers] + ["        return x"]
        prelude, methods = self.ops.network_extras(len(m.spec.input_shape))
        body += ["", f"    def {self.ops.FORWARD}(self, {params}):"] + prelude + lines
        return "\n".join(body + methods) + "\n"

    # -- graphs -----------------------------------------------------------------------------
    def graph_forward(self, g, path: str) -> tuple[str, list[str]]:
        """A graph's forward as a person writes one: each node's output in a local named after
        the node, ``x`` along a chain (a value read once, by the next node, while ``x`` is free),
        merges as expressions (``torch.cat([up, skip], 1)``, ``a + b``)."""
        ins, refs, outs, nodes = g.input_names(), g.refs(), g.output_names(), g.nodes
        names = Locals(self.ops)
        local: dict[str, str] = {}
        if variadic(g):
            params, holder = "*xs", None
        elif len(ins) == 1:
            params, holder = "x", ins[0]
            local[ins[0]] = "x"
        else:
            params, holder = ", ".join(local.setdefault(i, names.new(i)) for i in ins), None
        readers: dict[str, list[int]] = {}
        for i, r in enumerate(refs):
            for name in r:
                readers.setdefault(name, []).append(i)
        lines = []
        for i, (node, r) in enumerate(zip(nodes, refs)):
            expr = self.node_expr(node, f"{path}.{node.name}" if path else node.name,
                                  [local.get(a, "") for a in r], variadic(g) and i == 0)
            if i == len(nodes) - 1 and outs == [node.name]:
                lines += wrapped(f"{_IND * 2}return ", expr)
                return params, lines
            if (readers.get(node.name) == [i + 1] and node.name not in outs
                    and (holder is None or max(readers.get(holder, [-1])) <= i)):
                local[node.name], holder = "x", node.name
            else:
                local[node.name] = names.new(node.name, node.op == "merge")
            lines += wrapped(f"{_IND * 2}{local[node.name]} = ", expr)
        lines += wrapped(f"{_IND * 2}return ", ", ".join(local[o] for o in outs))
        return params, lines

    def node_expr(self, node, path: str, args: list[str], takes_all: bool) -> str:
        if node.op != "merge":
            return f"{attr(node.name)}({', '.join(args)})"
        if node.mode == "concat":
            seq = self.ops.VARARGS.format("xs") if takes_all else f"[{', '.join(args)}]"
            return self.ops.CAT_AT.format(seq, merge_dim(node, self.m.shape[path]))
        if node.mode in ("add", "mul"):
            return f" {'+' if node.mode == 'add' else '*'} ".join(args)
        y = args[0]
        for a in args[1:]:
            y = self.ops.MAXIMUM.format(y, a)
        return y


class Locals:
    """Local variable names of a forward: node names made identifiers (``0`` -> ``x0``,
    ``block1-0`` -> ``block1_0``), a merge's without its numbering (``cat_3`` -> ``cat``), none
    shadowing a keyword, a builtin or a name the file imports, each used once."""

    def __init__(self, ops):
        self.taken = {"x", "xs", "self"} | set(ops.GLOBALS)

    def new(self, name: str, merge: bool = False) -> str:
        base = re.sub(r"[_\d]+$", "", name) if merge else name
        base = re.sub(r"\W", "_", base or "merged")
        if base[0].isdigit():
            base = f"x{base}"
        if keyword.iskeyword(base) or base in dir(builtins):
            base += "_"
        out, i = base, 2
        while out in self.taken:
            out, i = f"{base}{i}", i + 1
        self.taken.add(out)
        return out


def wrapped(head: str, expr: str) -> list[str]:
    """``head + expr``, or where longer than WIDTH the expression in parentheses over lines."""
    line = head + expr
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(head) - len(head.lstrip()) + 4)
    return textwrap.wrap(f"{head}({expr})", WIDTH, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def text(v) -> str:
    return v.text if isinstance(v, Code) else lit(v)


def docstring(m: Model, cls: str) -> str:
    meta = m.spec.meta
    kind = "a captured network" if meta.family == "captured" else meta.family
    lines = [f"{m.spec.name} ({kind}) for {m.ops.FRAMEWORK}, generated by onespec from its spec."]
    if meta.paper:
        lines += ["", f"Paper: {meta.paper}."]
    if meta.source:
        lines += [f"Structure of: {meta.source}."]
    call = "build(num_classes)" if meta.num_classes else "build()"
    lines += ["", f"``{call}`` returns ``{cls}``; parameter names are onespec's native names, so",
              f"a checkpoint from ``onespec convert --to {m.ops.FRAMEWORK}`` loads with {m.ops.LOADER}.",
              "", "Conventions translated from onespec's spec (torch's conventions):"]
    lines += [f"- {c}" for c in conventions(m.spec, m.ops)]
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, WIDTH - 2, subsequent_indent="  " if line.startswith("-") else "",
                                 break_on_hyphens=False) or [""]
    return '"""' + "\n".join(wrapped) + '\n"""\n'


def write(m: Model) -> str:
    w = Writer(m)
    # a captured module keeps its own class name
    named = m.spec.name if m.spec.meta.family == "captured" else m.spec.meta.family
    cls = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", named) if p) or "Network"
    if not cls.isidentifier():
        cls = "Network"
    if cls in {k.cls for k in m.classes}:
        cls += "Net"
    classes = [w.kind_class(k) for k in m.classes]
    net = w.network(cls)
    helpers = list(m.helpers)
    if w.uses_seq and m.ops.SEQUENTIAL in m.ops.HELPERS:
        helpers.append(m.ops.SEQUENTIAL)
    if any(k.op == "shift_max" for k in m.classes):
        helpers.append("shift_max")
    imports = m.ops.IMPORTS
    if any("np." in m.ops.HELPERS[h] for h in helpers):
        imports = "import numpy as np\n" + imports
    for used, line in getattr(m.ops, "OPTIONAL_IMPORTS", {}).items():
        if any(used in m.ops.HELPERS[h] for h in helpers):
            imports += line
    parts = [docstring(m, cls), imports]
    parts += [m.ops.HELPERS[h] for h in helpers]
    parts += w.tables + classes + [net]
    nc = m.spec.meta.num_classes
    parts.append(f"def build(num_classes={nc}):\n    \"\"\"The network, in eval mode after loading weights as"
                 f" the docstring says.\"\"\"\n    return {cls}(num_classes)\n" if nc else
                 f"def build():\n    return {cls}()\n")
    return "\n\n".join(p.rstrip("\n") + "\n" for p in parts).replace("\n\n\n\n", "\n\n\n")
