"""SageMaker deployment and the move off Elastic Inference: package, deploy, migrate, advise.

Nothing here imports boto3 until a command runs; every AWS client comes from one factory
(``eikit.cloud.aws.Clients``) so tests can hand in moto's.
"""
