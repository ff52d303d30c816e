*** Settings ***
Documentation    Acceptance tests of DriveLibrary on the host, through fio's nbd engine (no VM): the
...              client QLC drive falls off its write cliff and collects garbage, a datacenter drive
...              under the same load does not (the cliff verdict's negative proof), health follows
...              the writes, the verdicts name every bad field, namespaces share one drive, and bad
...              input fails in one line.

Library          Collections
Library          OperatingSystem
Library          DriveLibrary
Library          FioLibrary    job_dir=${CURDIR}/../../../fio_jobs

Test Tags        drive_model


*** Variables ***
# 16 MiB: one fill of the free blocks takes about a second at 16 MiB/s; 32 MiB (the cliff test)
# about two, and 20 s of random writes fill it several times over.
${SMALL}    16M


*** Test Cases ***
Client QLC Drive Falls Off Its Write Cliff And Collects Garbage
    ${drive}    Start Emulated Drive    client-qlc    size=32M
    ${before}    Get Drive Health    ${drive}
    ${result}    Run Fio Job    drive/nbd_random_writes    uri=${drive.uri}    runtime=20
    Write Cliff Should Be Seen    ${result}    min_ratio=3    head=2s    tail=5s
    ${after}    Get Drive Health    ${drive}
    Should Be True    ${after}[write_amplification] > 2
    Drive Wear Should Have Grown    ${before}    ${after}
    Drive Event Should Have Happened    ${drive}    gc
    Drive Event Should Have Happened    ${drive}    buffer_full
    Log Drive States Chart    ${result}    ${drive}

A Datacenter Drive Shows No Cliff Under The Same Load
    [Documentation]    Negative proof of `Write Cliff Should Be Seen`: 28 % over-provisioning and
    ...    160 MiB/s of programs keep up with the same writes, and the verdict fails naming both figures.
    ${drive}    Start Emulated Drive    datacenter-tlc    size=32M
    ${result}    Run Fio Job    drive/nbd_random_writes    uri=${drive.uri}    runtime=10
    Run Keyword And Expect Error    no write cliff: fresh-out-of-box * IOPS * vs steady * IOPS *: ratio * is below 3
    ...    Write Cliff Should Be Seen    ${result}    min_ratio=3    head=2s    tail=3s

A Fresh Drive Is Healthy
    ${drive}    Start Emulated Drive    datacenter-tlc    size=64M
    ${health}    Drive Health Should Be OK    ${drive}
    Should Be Equal As Integers    ${health}[critical_warning]    0
    Should Be Equal As Integers    ${health}[power_cycles]    1
    Dictionary Should Contain Key    ${health}    free_blocks_pct
    Run Keyword And Expect Error    drive * recorded no 'gc' event (it recorded: power)
    ...    Drive Event Should Have Happened    ${drive}    gc
    Run Keyword And Expect Error    drive wear did not grow: percent_used 0 -> 0; data_units_written 0 -> 0
    ...    Drive Wear Should Have Grown    ${health}    ${health}

A Worn Drive Fails Its Health Check Naming Every Bad Field
    [Documentation]    Negative proof of `Drive Health Should Be OK`: a drive near the end of its
    ...    life, read until it returns media errors.
    ${drive}    Start Emulated Drive    worn    size=${SMALL}    media_error_rate=20%
    Run Fio Job    drive/nbd_random_writes    uri=${drive.uri}    runtime=3    rw=randrw
    ...    allow_errors=${True}
    Run Keyword And Expect Error
    ...    Drive * (worn) health is not OK: percent_used 9* % > 90 %; media_errors * > 0
    ...    Drive Health Should Be OK    ${drive}    max_percent_used=90

A Hot Drive Throttles And Fails A Temperature Limit Under Load
    [Documentation]    With a 1 s thermal time constant the hot drive throttles within seconds of
    ...    sustained writes (it then cycles between 68 and 75 °C), and a 60 °C limit fails by name.
    ${drive}    Start Emulated Drive    hot    size=${SMALL}    thermal_time_constant=1s
    ${fio}    Start Fio Job    drive/nbd_random_writes    uri=${drive.uri}    runtime=5
    Sleep    3s
    Run Keyword And Expect Error    Drive * (hot) health is not OK: temperature * °C > 60 °C
    ...    Drive Health Should Be OK    ${drive}    max_temperature_c=60
    Wait For Fio Job    ${fio}
    ${throttles}    Get Drive Events    ${drive}    kind=thermal_throttle
    Should Be Equal    ${throttles[0].action}    begin

Namespaces Of One Drive Contend Inside It
    [Documentation]    Two namespaces of one client QLC drive share its 16 MiB/s of programs: a
    ...    tenant writing alone gets about 4,000 IOPS, two together about half each.
    ${drive}    Start Emulated Drive    client-qlc    size=64M    namespaces=2
    Length Should Be    ${drive.uris}    2
    ${alone}    Run Fio Job    drive/nbd_random_writes    uri=${drive.uris}[0]    runtime=2
    ${first}    Start Fio Job    drive/nbd_random_writes    uri=${drive.uris}[0]    runtime=2
    ${second}    Start Fio Job    drive/nbd_random_writes    uri=${drive.uris}[1]    runtime=2
    ${together}    Wait For Fio Job    ${first}
    Wait For Fio Job    ${second}
    ${solo_iops}    Get Fio Metric    ${alone}    iops    direction=write
    ${shared_iops}    Get Fio Metric    ${together}    iops    direction=write
    Should Be True    ${shared_iops} < 0.7 * ${solo_iops}
    ...    tenant A wrote ${shared_iops} IOPS beside tenant B, ${solo_iops} alone: no contention

Bad Drive Input Is One Clear Line
    Run Keyword And Expect Error    drive personality 'fast' not found (*); shipped: client-qlc, datacenter-tlc, *
    ...    Start Emulated Drive    fast
    Run Keyword And Expect Error    client-qlc override: unknown drive parameter 'progam_latency' (known: *
    ...    Start Emulated Drive    client-qlc    progam_latency=2ms
    Run Keyword And Expect Error    client-qlc override: read_latency '100' has no unit*
    ...    Start Emulated Drive    client-qlc    read_latency=100
    Run Keyword And Expect Error    client-qlc override: over_provisioning 1.0% of * need at least *
    ...    Start Emulated Drive    client-qlc    size=16M    over_provisioning=1%
    VAR    ${bad}    ${OUTPUT DIR}${/}bad-drive.yaml
    Create File    ${bad}    timing: {read_latency: 1ms, progam_latency: 2ms}\n
    Run Keyword And Expect Error    ${bad}: unknown key 'timing.progam_latency' (known: *
    ...    Start Emulated Drive    ${bad}
    Run Keyword And Expect Error    'x' is not an emulated drive (use the handle `Start Emulated Drive` returned)
    ...    Get Drive Health    x

Drives Are Gone After Their Test
    [Documentation]    The drive of the test before ended with it: no server, no private folder.
    ${drive}    Start Emulated Drive    client-qlc    size=${SMALL}
    VAR    ${LEFT}    ${drive}    scope=SUITE
    Should Be True    ${drive.is_alive()}

The Drive Of The Test Before Was Stopped
    Should Not Be True    ${LEFT.is_alive()}
    Directory Should Not Exist    ${LEFT.run_dir}
