from brokenchairs.cli import main

main()
