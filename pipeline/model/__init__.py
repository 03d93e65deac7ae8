"""The model: recurrent cells (fused, GRU, RNN, Greff variants), their scan, and the sequence model around them."""
