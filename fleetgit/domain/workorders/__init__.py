"""Work orders: the steps of a sortie."""
