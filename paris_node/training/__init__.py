"""paris_node.training"""
