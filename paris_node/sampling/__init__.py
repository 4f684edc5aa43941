"""paris_node.sampling"""
