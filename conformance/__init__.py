"""quota-conformance: check any implementation of the Quota Funding API against openapi.yaml."""
