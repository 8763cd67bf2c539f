provider "aws" {
  region     = "eu-central-1"
  access_key = "ASIAUERGTMFYAB5422CT"
  secret_key = "8woxM/WwMeZ4swstab2+lxwX6mRcVIpwQl2qjqDT"
}

resource "aws_db_instance" "orders" {
  identifier        = "orders-prod"
  engine            = "postgres"
  engine_version    = "16.3"
  instance_class    = "db.r6g.large"
  allocated_storage = 200
  username          = "orders"
  password          = var.db_password
  kms_key_id        = "arn:aws:kms:eu-central-1:123456789012:key/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
  skip_final_snapshot = false
}

variable "db_password" {
  type      = string
  sensitive = true
}
