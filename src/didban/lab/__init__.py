"""The censorship lab: an emulated national censor (Iran profiles) in Linux network
namespaces, with fake services, a lab CA and ground truth. Imported only by the CLI and tests."""
