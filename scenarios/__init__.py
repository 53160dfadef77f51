"""The shipped scenarios, as package data: ``possim`` finds them with ``importlib.resources``, so they
travel with an installed possim and run by name ("possim run response-lost") from any folder."""
