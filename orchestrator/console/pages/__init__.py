"""The console's pages, one module per resource, each as thin as an API route."""
