"""The model: arch and workload in, lowering, sparsity, mapping, simpy engine, energy, simulate -> Report."""
