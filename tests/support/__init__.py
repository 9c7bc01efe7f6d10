"""What tests in several folders share: the CLI runner and small backends
(``testkit``), project directories (``sample_projects``), the reference 0.4.1
(``reference``), thread races (``races``) and the records models
(``record_semantics``)."""
