"""paris_node.models"""
