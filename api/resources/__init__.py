"""One module per resource: a Blueprint, its schemas' use, and thin views."""
