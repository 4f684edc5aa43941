"""paris_node.node"""
