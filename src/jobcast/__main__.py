from jobcast.cli import main

main()
