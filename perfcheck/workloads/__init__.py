"""What is measured: fio, sockperf and iperf3, the drift-control workload, the round loop
(warm-up, measured rounds, the probe/fio cross-check) and the scenario files that pick them.
"""
