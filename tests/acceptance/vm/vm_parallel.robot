*** Settings ***
Documentation    Two pabot workers run VM suites side by side: no port, socket or file collision,
...              results merge, and no QEMU is left afterwards.

Library          OperatingSystem
Library          Process
Library          String

Test Tags        vm    acceptance    parallel


*** Variables ***
${WORKERS}    ${CURDIR}${/}..${/}..${/}workers${/}vm_parallel


*** Test Cases ***
Two Pabot Workers Run VM Suites Side By Side
    [Documentation]    pabot --processes 2 over two VM suites: both pass on different SSH ports, then
    ...    pgrep finds no QEMU of theirs.
    VAR    ${out}    ${OUTPUT DIR}${/}pabot
    Run Pabot With Two Workers    ${out}
    ${merged}    Get File    ${out}${/}output.xml
    Should Contain    ${merged}    Worker A Boots A VM And Runs Fio
    Should Contain    ${merged}    Worker B Boots A VM And Runs Fio
    ${ports}    Get Regexp Matches    ${merged}    worker [ab]: ssh port (\\d+)    1
    Length Should Be    ${ports}    2
    Should Not Be Equal    ${ports}[0]    ${ports}[1]
    ${left}    Run Process    pgrep    -af    nvmechaos-worker
    Should Be Equal As Integers    ${left.rc}    1    QEMU left running: ${left.stdout}


*** Keywords ***
Run Pabot With Two Workers
    [Documentation]    Run the worker suites with pabot (2 processes) into ${out}; fail unless all pass.
    [Arguments]    ${out}
    ${python}    Evaluate    sys.executable
    ${result}    Run Process    ${python}    -m    pabot.pabot    --processes    2
    ...    --command    ${python}    -m    robot    --end-command    --outputdir    ${out}
    ...    --loglevel    DEBUG    ${WORKERS}    cwd=${OUTPUT DIR}    timeout=300s    on_timeout=kill
    ...    stderr=STDOUT
    Log    ${result.stdout}
    Should Be Equal As Integers    ${result.rc}    0    pabot failed:\n${result.stdout}
