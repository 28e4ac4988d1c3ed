"""The API's endpoints, one router per concern: predictions, status (health, model), admin."""
