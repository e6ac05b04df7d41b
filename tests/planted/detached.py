"""Hostile backend: softmax with the right values but no autograd graph (computed under no_grad and
returned detached). Its gradient checks used to be filed "unsupported: backend returned no grad"."""
import torch
from torch.nn import functional as F


def softmax(input, dim):
    with torch.no_grad():
        return F.softmax(input, dim=dim)
