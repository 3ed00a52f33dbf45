"""Images: Dockerfile selection (matrix), pins, build (Docker SDK), push (ECR), local containers."""
