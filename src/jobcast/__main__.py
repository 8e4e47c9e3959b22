from jobcast.cli import main

main(prog_name="jobcast")
