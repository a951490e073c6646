"""skfal on Flower: federated leverage score selection across SuperNodes."""
