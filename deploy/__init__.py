"""Deployment to a devnet or any EVM chain, the demo, and service configs."""
