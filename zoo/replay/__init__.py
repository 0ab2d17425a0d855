"""Replay memory that stores each frame once: the frame buffer and its prioritized
variant, with their size arithmetic."""
