from jobcast.service.cli import main

main(prog_name="jobcast")
