"""The user commands around a trained model: predict, draw, serve, promote, ui, server."""
