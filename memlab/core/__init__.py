"""What two or more labs use: errors, units, timing, the hardware card, models and their loading,
generation, byte arithmetic, the roofline, measured ceilings, the memory guard, worker launch.

The core imports no topic (no lab folder); every topic imports only the core (tests/test_layout.py).
"""
