from possim.cli import main

main()
