"""paris_node.swarm"""
