"""Pretrained image backbones that ship with the project (converted from registry packages)."""
