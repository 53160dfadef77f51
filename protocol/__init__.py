"""Wire protocol shared by the terminal and the host: messages, ISO 8583 codec, links and faults."""
