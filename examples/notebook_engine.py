"""The seed notebook's engine, exactly as the notebook wrote it, defects included.

It is kept as the historical baseline: the audit must find its defects, and the
benchmarks time it against the corrected engine. Do not fix it. The notebook's cells are
gathered into one module unchanged; at the end, a plug-in adapter (using only the
notebook's classes) lets `autodiff-audit audit --engine examples.notebook_engine` audit it.
"""
# ruff: noqa
import numpy as np


class NodeBase:
    def __init__(self, name, input_nodes=[]):
        self.name = name
        self.inputs = input_nodes
        self.value = None
        self.outputs = []
        self.gradients = {}
        for node in self.inputs:
            node.outputs.append(self)

    def forward(self, value):
        raise NotImplementedError()

    def backward(self):
        raise NotImplementedError()

    def show(self):
        print(self.name)
        print('  in: ', [n.name for n in self.inputs])
        print('  val:', self.value)
        print('  out:', [n.name for n in self.outputs])
        print('  gra: ', end='')
        for k, v in self.gradients.items():
            print(k.name, v, end='  ')
        print()


class NodeInput(NodeBase):
    def forward(self, value=None):
        if value is not None:
            self.value = value
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self] = grad_sum


class NodeOutput(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 1
        assert len(self.outputs) == 0
        self.value = self.inputs[0].value
    def backward(self):
        self.gradients[self.inputs[0]] = 1  # wrt self


class NodeAdd(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 2
        self.value = self.inputs[0].value + self.inputs[1].value
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = grad_sum
        self.gradients[self.inputs[1]] = grad_sum


class NodeSubstract(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 2
        self.value = self.inputs[0].value - self.inputs[1].value
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = grad_sum
        self.gradients[self.inputs[1]] = -grad_sum


class NodeMult(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 2
        self.value = self.inputs[0].value * self.inputs[1].value
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = self.inputs[1].value * grad_sum
        self.gradients[self.inputs[1]] = self.inputs[0].value * grad_sum


class NodePower(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 1
        self.value = self.inputs[0].value**2
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = 2*grad_sum


class NodeReduceSum(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 1
        self.value = np.sum(self.inputs[0].value)
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = np.ones_like(self.inputs[0].value) * grad_sum


class NodeDot(NodeBase):
    def forward(self, ignore=None):
        assert len(self.inputs) == 2
        self.value = self.inputs[0].value @ self.inputs[1].value
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = grad_sum @ self.inputs[1].value.T
        self.gradients[self.inputs[1]] = self.inputs[0].value.T @ grad_sum
        assert self.gradients[self.inputs[0]].shape == self.inputs[0].value.shape
        assert self.gradients[self.inputs[1]].shape == self.inputs[1].value.shape


class NodeSigmoid(NodeBase):
    def _sigmoid(self, x):
        return 1 / (1 + np.exp(-x))
    def forward(self, ignore=None):
        assert len(self.inputs) == 1
        x = self.inputs[0].value
        self.value = self._sigmoid(x)
    def backward(self):
        grad_sum = np.sum([o.gradients[self] for o in self.outputs])
        self.gradients[self.inputs[0]] = self.value * (1 - self.value) * grad_sum


def run(fd, nodes):
    for n in nodes:
        n.forward(fd.get(n))
    for n in nodes[::-1]:
        n.backward()


def print_all(fd, nodes):
    print('FD: ', end='')
    for k, v in fd.items():
        print(k.name, v, end='  ')
    print()
    for n in nodes:
        n.show()


def ngrad(fd, nodes):
    eps = 0.0001
    for in_node in fd:
        fd_pls = fd.copy()
        fd_pls[in_node] += eps
        run(fd_pls, nodes)
        res_pls = nodes[-1].value
        fd_min = fd.copy()
        fd_min[in_node] -= eps
        run(fd_min, nodes)
        res_min = nodes[-1].value
        delta = (res_pls-res_min) / (2*eps)
        print('del(', in_node.name, ')=', delta )


# ---------------------------------------------------------------------------------------
# The plug-in adapter (not from the notebook). Everything above is the notebook's code,
# untouched; everything below puts it behind the plug-in protocol of graph-format.md, so
# that `autodiff-audit audit --engine examples.notebook_engine` audits it.
# ---------------------------------------------------------------------------------------

name = "notebook-engine"

# op name of the graph format -> the notebook's node class.
NODE_CLASSES = {
    "add": NodeAdd,
    "subtract": NodeSubstract,
    "mult": NodeMult,
    "power": NodePower,
    "reduce_sum": NodeReduceSum,
    "dot": NodeDot,
    "sigmoid": NodeSigmoid,
}
ops = set(NODE_CLASSES)


def accepts(graph):
    """None if the notebook's classes can express `graph`, else a one-line reason why not.

    Only what the notebook has no node for is refused: NodePower always squares and
    NodeReduceSum always sums every element. Tensors, broadcasting and dot are accepted,
    since that is where the notebook's gradients go wrong and the audit must see it.
    """
    for node in graph["nodes"]:
        op, attrs = node["op"], node.get("attrs") or {}
        if op not in NODE_CLASSES:
            return f"the notebook has no node class for op {op!r} (node {node['name']!r})"
        if op == "power" and attrs.get("exponent", 2) != 2:
            return f"the notebook's NodePower only squares (node {node['name']!r} has exponent {attrs['exponent']})"
        if op == "reduce_sum":
            if attrs.get("axis") is not None:
                return (
                    f"the notebook's NodeReduceSum only sums all elements "
                    f"(node {node['name']!r} has axis {attrs['axis']})"
                )
            if attrs.get("keepdims", False):
                return f"the notebook's NodeReduceSum cannot keep dims (node {node['name']!r} has keepdims true)"
    return None


def evaluate(graph, values, cotangent):
    """Evaluate `graph` with the notebook's engine: (output value, {input name: v^T J}).

    Built from the notebook's classes only, and run by the notebook's own `run`: nothing
    here corrects the notebook, so its defects reach the audit as they are. The notebook
    can only seed the scalar 1 (NodeOutput), so the cotangent v enters as one more input,
    and the engine differentiates sum(v * output), whose gradient is exactly v^T J.
    """
    # Explicit empty lists: the notebook's default `input_nodes=[]` is shared by all nodes.
    inputs = [NodeInput(entry["name"], []) for entry in graph["inputs"]]
    by_name = {node.name: node for node in inputs}
    computed = []
    for entry in graph["nodes"]:
        node = NODE_CLASSES[entry["op"]](entry["name"], [by_name[operand] for operand in entry["inputs"]])
        by_name[entry["name"]] = node
        computed.append(node)
    result = by_name[graph["output"]]  # a node, or an input when the graph's output is one

    # The cotangent wrapper: sum(v * output). Names need not be unique to the notebook.
    weights = NodeInput("cotangent", [])
    weighted = NodeMult("cotangent * output", [result, weights])
    total = NodeReduceSum("sum(cotangent * output)", [weighted])
    seed = NodeOutput("out", [total])

    feed = {node: values[node.name] for node in inputs}
    feed[weights] = cotangent
    # The notebook needs its nodes in topological order, by hand: the graph's order is one.
    run(feed, [*inputs, *computed, weights, weighted, total, seed])
    return result.value, {node.name: node.gradients[node] for node in inputs}
