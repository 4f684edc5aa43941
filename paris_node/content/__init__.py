"""paris_node.content"""
