"""Replay: trace reading, trace record -> workload projection, device calibration, validation report."""
