"""paris_node.data"""
