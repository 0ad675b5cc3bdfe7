from edgedepth.cli import main

main()
