"""`make bench`: Cartero's benchmark harness. Every figure is measured in one run, side by side."""
