"""The seed notebook's engine, exactly as the notebook wrote it, defects included.

It is kept as the historical baseline: the audit must find its defects, and the
benchmarks time it against the corrected engine. Do not fix it. The only change is that
the cells are gathered into one module.
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
