"""Walking an ONNX graph together with the subgraphs its nodes hold (Loop and If bodies, Scan)."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

__all__ = ["graph_nodes", "graphs"]


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph``, then every subgraph its nodes hold, depth first. A caller may rewrite a graph's node list
    before the walk goes on to its subgraphs: they are read from the nodes as they stand then."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from graphs(subgraph)


def graph_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs."""
    for each in graphs(graph):
        yield from each.node
