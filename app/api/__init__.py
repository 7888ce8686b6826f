"""The HTTP and websocket interface: schemas, dependencies and one router per resource."""
